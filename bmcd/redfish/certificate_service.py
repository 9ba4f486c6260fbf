"""CertificateService: GenerateCSR, ReplaceCertificate and where certificates are.

The certificate resources themselves live under Managers/1 (see
network_protocol); this module renders them, runs the two actions, and
starts the certificate manager with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bmcd.core.certificates import (
    CertificateManager,
    CertificateRejected,
    Problem,
    Slot,
    StoredCertificate,
)
from bmcd.core.certinfo import KEY_USAGES, NameFacts
from bmcd.core.csr import (
    CURVES,
    KEY_BIT_LENGTHS,
    KEY_PAIR_ALGORITHMS,
    MAX_ALTERNATIVE_NAMES,
    RSA,
    SUBJECT_PARAMETERS,
    CSRParameterError,
    CSRRequest,
)
from bmcd.core.errors import Message, RedfishError
from bmcd.core.validation import check_action
from bmcd.generated.registries import Base
from bmcd.http import keys
from bmcd.http.routing import Body, Call, Reply, RouteTable, link, odata_type
from bmcd.http.tls import TLSContextHolder, ensure_certificate

_LOGGER = logging.getLogger(__name__)

SERVICE_URI = "/redfish/v1/CertificateService"
LOCATIONS_URI = f"{SERVICE_URI}/CertificateLocations"
GENERATE_CSR_URI = f"{SERVICE_URI}/Actions/CertificateService.GenerateCSR"
REPLACE_URI = f"{SERVICE_URI}/Actions/CertificateService.ReplaceCertificate"
GENERATE_CSR_INFO_URI = f"{SERVICE_URI}/GenerateCSRActionInfo"
REPLACE_INFO_URI = f"{SERVICE_URI}/ReplaceCertificateActionInfo"
HTTPS_CERTIFICATES_URI = "/redfish/v1/Managers/1/NetworkProtocol/HTTPS/Certificates"
TRUSTED_CERTIFICATES_URI = (
    "/redfish/v1/Managers/1/SecurityPolicy/TLS/Client/TrustedCertificates"
)
COLLECTIONS: dict[Slot, str] = {
    Slot.HTTPS: HTTPS_CERTIFICATES_URI,
    Slot.TRUST: TRUSTED_CERTIFICATES_URI,
}
# Collections GenerateCSR can make a key for (the trust store holds no keys).
CSR_COLLECTIONS = (HTTPS_CERTIFICATES_URI,)
CERTIFICATE_TYPES = ("PEM", "PEMchain")
EXPIRY_CHECK_SECONDS = 24 * 3600


_GENERATE_CSR = "#CertificateService.GenerateCSR"
_REPLACE = "#CertificateService.ReplaceCertificate"


def register(routes: RouteTable) -> None:
    """Declare the CertificateService, its locations and its actions."""
    routes.add(SERVICE_URI, "CertificateService", get=get_certificate_service)
    routes.add(LOCATIONS_URI, "CertificateLocations", get=get_locations)
    routes.add(GENERATE_CSR_URI, "CertificateService", post=post_generate_csr)
    routes.add(REPLACE_URI, "CertificateService", post=post_replace_certificate)
    routes.add(GENERATE_CSR_INFO_URI, "ActionInfo", get=get_generate_csr_info)
    routes.add(REPLACE_INFO_URI, "ActionInfo", get=get_replace_info)
    routes.attach("ServiceRoot", "CertificateService", link(SERVICE_URI))


async def _tls_holder(app: web.Application) -> TLSContextHolder:
    """The daemon's TLS context holder; made here when there is none (tests)."""
    try:
        return keys.TLS.get(app)
    except KeyError:
        pass
    config = keys.CONFIG.get(app)
    cert_file, key_file = await ensure_certificate(
        config.state_dir, config.tls.certificate, config.tls.key
    )
    holder = await asyncio.to_thread(TLSContextHolder.open, cert_file, key_file)
    keys.TLS.set(app, holder)
    return holder


async def cleanup_context(app: web.Application) -> AsyncIterator[None]:
    """Run the certificate manager and its daily expiry check."""
    config = keys.CONFIG.get(app)
    holder = await _tls_holder(app)
    manager = CertificateManager(
        config.state_dir,
        holder,
        allow_key_upload=config.tls.allow_key_upload,
        expiry_warning_days=config.tls.expiry_warning_days,
    )
    await manager.start()
    keys.CERTIFICATES.set(app, manager)
    watcher = asyncio.create_task(
        _watch_expiry(manager), name="bmcd certificate expiry check"
    )
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        manager.close()


async def _watch_expiry(manager: CertificateManager) -> None:
    while True:
        await asyncio.sleep(EXPIRY_CHECK_SECONDS)
        try:
            await manager.check_expiry()
            await manager.prune_pending()
        except Exception:
            _LOGGER.exception(
                "Certificate expiry check failed; next try in %d s",
                EXPIRY_CHECK_SECONDS,
            )


def manager_of(call: Call) -> CertificateManager:
    """The certificate manager of the app serving ``call``."""
    return keys.CERTIFICATES.get(call.app)


# Rendering


def certificate_uri(stored: StoredCertificate) -> str:
    """The URI of an installed certificate."""
    return f"{COLLECTIONS[stored.slot]}/{stored.id}"


def locate(uri: str) -> tuple[Slot, str] | None:
    """The slot and id a certificate URI names (syntax only)."""
    for slot, collection_uri in COLLECTIONS.items():
        prefix = collection_uri + "/"
        rest = uri.rstrip("/").removeprefix(prefix)
        if rest != uri.rstrip("/") and rest and "/" not in rest:
            return slot, rest
    return None


def identifier(name: NameFacts, alt_names: tuple[str, ...] = ()) -> Body:
    """A Certificate.Identifier object for a subject or issuer."""
    fields = name.fields
    body: Body = {}
    singles = (
        ("CommonName", "CN"),
        ("Organization", "O"),
        ("OrganizationalUnit", "OU"),
        ("City", "L"),
        ("State", "ST"),
        ("Country", "C"),
        ("Email", "emailAddress"),
    )
    for prop, short in singles:
        if short in fields:
            body[prop] = fields[short][0]
    if len(fields.get("CN", ())) > 1:
        body["AdditionalCommonNames"] = list(fields["CN"][1:])
    if len(fields.get("OU", ())) > 1:
        body["AdditionalOrganizationalUnits"] = list(fields["OU"][1:])
    if "DC" in fields:
        body["DomainComponents"] = list(fields["DC"])
    if alt_names:
        body["AlternativeNames"] = list(alt_names)
    body["DisplayString"] = name.display
    return body


def _time(moment: Any) -> str:
    return str(moment.isoformat(timespec="seconds"))


def certificate_body(stored: StoredCertificate) -> Body:
    """The Certificate resource of an installed certificate."""
    facts = stored.facts
    https = stored.slot is Slot.HTTPS
    body: Body = {
        "@odata.id": certificate_uri(stored),
        "@odata.type": odata_type("Certificate"),
        "Id": stored.id,
        "Name": "HTTPS Certificate" if https else "Trusted Certificate",
        "Description": "The certificate the HTTPS server presents"
        if https
        else "A certificate bmcd trusts when it connects to other servers",
        "CertificateString": facts.pem,
        "CertificateType": "PEM",
        "Subject": identifier(facts.subject, facts.alt_names),
        "Issuer": identifier(facts.issuer),
        "ValidNotBefore": _time(facts.not_before),
        "ValidNotAfter": _time(facts.not_after),
        "KeyUsage": list(facts.key_usage),
        "SerialNumber": facts.serial,
        "Fingerprint": facts.fingerprint,
        "FingerprintHashAlgorithm": "TPM_ALG_SHA256",
        "SignatureAlgorithm": facts.signature_algorithm,
    }
    if https:
        body["CertificateUsageTypes"] = ["Web"]
    return body


async def get_certificate_service(call: Call) -> Body:
    """The service: where certificates are and the two actions."""
    return {
        "@odata.id": SERVICE_URI,
        "@odata.type": odata_type("CertificateService"),
        "Id": "CertificateService",
        "Name": "Certificate Service",
        "Description": "Certificate signing requests and certificate "
        "installation for this BMC",
        "CertificateLocations": link(LOCATIONS_URI),
        "Actions": {
            _GENERATE_CSR: {
                "target": GENERATE_CSR_URI,
                "@Redfish.ActionInfo": GENERATE_CSR_INFO_URI,
            },
            _REPLACE: {"target": REPLACE_URI, "@Redfish.ActionInfo": REPLACE_INFO_URI},
        },
    }


async def get_locations(call: Call) -> Body:
    """Links to every installed certificate."""
    manager = manager_of(call)
    uris = [certificate_uri(s) for slot in Slot for s in await manager.installed(slot)]
    return {
        "@odata.id": LOCATIONS_URI,
        "@odata.type": odata_type("CertificateLocations"),
        "Id": "CertificateLocations",
        "Name": "Certificate Locations",
        "Description": "Every certificate installed on this BMC",
        "Links": {
            "Certificates": [link(u) for u in uris],
            "Certificates@odata.count": len(uris),
        },
    }


def _parameter(name: str, data_type: str, required: bool = False, **extra: Any) -> Body:
    return {"Name": name, "Required": required, "DataType": data_type, **extra}


async def get_generate_csr_info(call: Call) -> Body:
    """The parameters GenerateCSR takes and the values bmcd supports."""
    subject = [
        _parameter(name, "String", name == "CommonName")
        for name in sorted(SUBJECT_PARAMETERS)
    ]
    for parameter in subject:
        if parameter["Name"] == "Country":
            parameter["AllowablePattern"] = "^[A-Za-z]{2}$"
    parameters = [
        _parameter(
            "CertificateCollection",
            "Object",
            True,
            ObjectDataType="#CertificateCollection.CertificateCollection",
            AllowableValues=list(CSR_COLLECTIONS),
        ),
        *subject,
        _parameter(
            "AlternativeNames", "StringArray", ArraySizeMaximum=MAX_ALTERNATIVE_NAMES
        ),
        _parameter("ChallengePassword", "String"),
        _parameter("UnstructuredName", "String"),
        _parameter(
            "KeyPairAlgorithm",
            "String",
            AllowableValues=list(KEY_PAIR_ALGORITHMS),
            DefaultValue=RSA,
        ),
        _parameter(
            "KeyBitLength", "Number", AllowableNumbers=[str(b) for b in KEY_BIT_LENGTHS]
        ),
        _parameter("KeyCurveId", "String", AllowableValues=list(CURVES)),
        _parameter(
            "KeyUsage",
            "StringArray",
            AllowableValues=list(KEY_USAGES),
            ArraySizeMaximum=len(KEY_USAGES),
        ),
    ]
    return {
        "@odata.id": GENERATE_CSR_INFO_URI,
        "@odata.type": odata_type("ActionInfo"),
        "Id": "GenerateCSRActionInfo",
        "Name": "GenerateCSR Action Info",
        "Parameters": parameters,
    }


async def get_replace_info(call: Call) -> Body:
    """The parameters ReplaceCertificate takes."""
    manager = manager_of(call)
    uris = [certificate_uri(s) for slot in Slot for s in await manager.installed(slot)]
    return {
        "@odata.id": REPLACE_INFO_URI,
        "@odata.type": odata_type("ActionInfo"),
        "Id": "ReplaceCertificateActionInfo",
        "Name": "ReplaceCertificate Action Info",
        "Parameters": [
            _parameter("CertificateString", "String", True),
            _parameter(
                "CertificateType",
                "String",
                True,
                AllowableValues=list(CERTIFICATE_TYPES),
            ),
            _parameter(
                "CertificateUri",
                "Object",
                True,
                ObjectDataType="#Certificate.Certificate",
                AllowableValues=uris,
            ),
        ],
    }


# Actions


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _link_parameter(body: Body, name: str, action: str) -> str:
    value = body[name]
    uri = value.get("@odata.id")
    if not isinstance(uri, str) or not uri.startswith("/redfish/v1/"):
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.ActionParameterValueFormatError,
            _shown(value),
            name,
            action,
            related=f"#/{name}",
        )
    return uri.rstrip("/")


def _not_in_list(value: Any, name: str, action: str) -> RedfishError:
    return RedfishError.of(
        HTTPStatus.BAD_REQUEST,
        Base.ActionParameterValueNotInList,
        _shown(value),
        name,
        action,
        related=f"#/{name}",
    )


def _string_items(body: Body, name: str, action: str, limit: int) -> tuple[str, ...]:
    items = body.get(name) or []
    if len(items) > limit:
        # Refused before any per-item work: a huge array must not stall
        # the event loop.
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.ArraySizeTooLong,
            name,
            limit,
            related=f"#/{name}",
        )
    problems = [
        Message(
            Base.ActionParameterValueTypeError,
            (_shown(item), name, action),
            (f"#/{name}/{index}",),
        )
        for index, item in enumerate(items)
        if not isinstance(item, str)
    ]
    if problems:
        raise RedfishError(HTTPStatus.BAD_REQUEST, problems)
    return tuple(items)


def csr_request(body: Body) -> CSRRequest:
    """The CSRRequest a checked GenerateCSR body asks for."""
    return CSRRequest(
        subject={name: body[name] for name in SUBJECT_PARAMETERS if name in body},
        alternative_names=_string_items(
            body, "AlternativeNames", "GenerateCSR", MAX_ALTERNATIVE_NAMES
        ),
        key_usage=_string_items(body, "KeyUsage", "GenerateCSR", len(KEY_USAGES)),
        key_pair_algorithm=body.get("KeyPairAlgorithm"),
        key_bit_length=body.get("KeyBitLength"),
        key_curve_id=body.get("KeyCurveId"),
        challenge_password=body.get("ChallengePassword"),
        unstructured_name=body.get("UnstructuredName"),
    )


def _csr_error(err: CSRParameterError) -> RedfishError:
    related = f"#/{err.parameter}"
    _LOGGER.warning("GenerateCSR refused: %s", err)
    if err.parameter == "KeyUsage" and not err.conflict:
        return _not_in_list(err.value, err.parameter, "GenerateCSR")
    if err.conflict:
        return RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.ActionParameterValueConflict,
            err.parameter,
            _shown(err.value),
            related=related,
        )
    return RedfishError.of(
        HTTPStatus.BAD_REQUEST,
        Base.ActionParameterValueFormatError,
        _shown(err.value),
        err.parameter,
        "GenerateCSR",
        related=related,
    )


async def post_generate_csr(call: Call) -> Body:
    """Make a key pair and return its CSR; the key stays on the BMC."""
    body = call.body()
    check_action(
        "CertificateService",
        _GENERATE_CSR,
        body,
        allowed_values={
            "KeyPairAlgorithm": KEY_PAIR_ALGORITHMS,
            "KeyBitLength": KEY_BIT_LENGTHS,
            "KeyCurveId": tuple(CURVES),
        },
    )
    collection_uri = _link_parameter(body, "CertificateCollection", "GenerateCSR")
    if collection_uri not in CSR_COLLECTIONS:
        raise _not_in_list(collection_uri, "CertificateCollection", "GenerateCSR")
    request = csr_request(body)
    try:
        csr = await manager_of(call).generate_csr(request)
    except CSRParameterError as err:
        raise _csr_error(err) from None
    return {"CSRString": csr, "CertificateCollection": link(collection_uri)}


def rejection(err: CertificateRejected, *, action: str | None = None) -> RedfishError:
    """The Redfish error for a refused certificate (action or POST body)."""
    name = "CertificateString"
    related = f"#/{name}"
    where = f"{action} refused" if action else "Certificate not installed"
    _LOGGER.warning("%s: %s", where, err.detail)
    if err.problem is Problem.DUPLICATE:
        return RedfishError.of(
            HTTPStatus.CONFLICT,
            Base.ResourceAlreadyExists,
            "Certificate",
            "Fingerprint",
            err.detail,
            related=related,
        )
    if err.problem is Problem.LIMIT:
        return RedfishError.of(
            HTTPStatus.BAD_REQUEST, Base.CreateLimitReachedForResource
        )
    if err.problem is Problem.LAST:
        return RedfishError.of(HTTPStatus.CONFLICT, Base.ResourceCannotBeDeleted)
    in_range = err.problem in (Problem.EXPIRED, Problem.NOT_YET_VALID)
    if action is not None:
        if err.problem is Problem.FORMAT:
            return RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.ActionParameterValueFormatError,
                err.detail,
                name,
                action,
                related=related,
            )
        if in_range:
            return RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.ActionParameterValueOutOfRange,
                err.detail,
                name,
                action,
                related=related,
            )
        return RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.ActionParameterValueConflict,
            name,
            err.detail,
            related=related,
        )
    if err.problem is Problem.FORMAT:
        return RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.PropertyValueFormatError,
            err.detail,
            name,
            related=related,
        )
    if in_range:
        return RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.PropertyValueOutOfRange,
            err.detail,
            name,
            related=related,
        )
    return RedfishError.of(
        HTTPStatus.BAD_REQUEST,
        Base.PropertyValueIncorrect,
        name,
        err.detail,
        related=related,
    )


async def post_replace_certificate(call: Call) -> Reply:
    """Put a new certificate in place of an installed one (same URI)."""
    body = call.body()
    check_action(
        "CertificateService",
        _REPLACE,
        body,
        supported=("CertificateString", "CertificateType", "CertificateUri"),
        allowed_values={"CertificateType": CERTIFICATE_TYPES},
    )
    uri = _link_parameter(body, "CertificateUri", "ReplaceCertificate")
    manager = manager_of(call)
    found = locate(uri)
    if found is None or await manager.get(*found) is None:
        raise _not_in_list(uri, "CertificateUri", "ReplaceCertificate")
    try:
        stored = await manager.replace(*found, body["CertificateString"])
    except CertificateRejected as err:
        raise rejection(err, action="ReplaceCertificate") from None
    except KeyError:  # deleted meanwhile
        raise _not_in_list(uri, "CertificateUri", "ReplaceCertificate") from None
    _LOGGER.info(
        "Certificate %s replaced by %s",
        uri,
        call.principal.username if call.principal else "unknown",
    )
    return Reply(
        certificate_body(stored), HTTPStatus.OK, {"Location": certificate_uri(stored)}
    )
