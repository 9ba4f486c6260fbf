"""The polkit rule for the accountsservice backend parses and grants narrowly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

RULE = (
    Path(__file__).resolve().parents[2]
    / "etc"
    / "polkit-1"
    / "rules.d"
    / "50-bmcd-accounts.rules"
)
NODE = shutil.which("node") or shutil.which("nodejs")
ACTION = "org.freedesktop.accounts.user-administration"

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(not RULE.exists(), reason="no etc/ directory here"),
]

# polkitd runs rules files as plain JavaScript with a global "polkit"; this
# stands in for the part of its API the rule uses.
_HARNESS = """
const fs = require("fs");
const [rulePath, casesJson] = process.argv.slice(1);  // node -e: no script path
const rules = [];
const polkit = {
    Result: {YES: "yes", NO: "no", AUTH_ADMIN: "auth_admin"},
    addRule: (rule) => rules.push(rule),
};
new Function("polkit", fs.readFileSync(rulePath, "utf8"))(polkit);
const answers = JSON.parse(casesJson).map(([actionId, user, groups]) => {
    const action = {id: actionId};
    const subject = {user: user, groups: groups,
                     isInGroup: (group) => groups.includes(group)};
    for (const rule of rules) {
        const result = rule(action, subject);
        if (result !== undefined) return result;
    }
    return null;
});
console.log(JSON.stringify({rules: rules.length, answers: answers}));
"""


def _evaluate(cases: list[tuple[str, str, list[str]]]) -> dict[str, object]:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", _HARNESS, str(RULE), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_rule_grants_only_bmcd_after_opt_in() -> None:
    answer = _evaluate(
        [
            (ACTION, "bmcd", ["bmcd", "shadow", "bmcd-accountsservice"]),
            # Installed but not opted in: the embedded backend's bmcd.
            (ACTION, "bmcd", ["bmcd", "shadow"]),
            (ACTION, "alice", ["alice", "bmcd-accountsservice"]),
            ("org.freedesktop.accounts.change-own-user-data", "bmcd", ["bmcd"]),
            (
                "org.freedesktop.login1.reboot",
                "bmcd",
                ["bmcd", "bmcd-accountsservice"],
            ),
        ]
    )

    assert answer == {"rules": 1, "answers": ["yes", None, None, None, None]}
