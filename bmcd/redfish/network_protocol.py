"""Managers/1/NetworkProtocol and SecurityPolicy, with their certificate collections.

NetworkProtocol shows what bmcd itself serves (HTTP and HTTPS) and links the
HTTPS server certificate; SecurityPolicy links the CAs bmcd trusts when it
connects out. Both collections take a POSTed Certificate and show each
certificate; a trusted CA can be deleted, the HTTPS certificate only replaced.
"""

from __future__ import annotations

import socket
from http import HTTPStatus

from bmcd.core.certificates import CertificateRejected, Slot
from bmcd.core.errors import RedfishError, not_found
from bmcd.core.validation import check_properties
from bmcd.generated.registries import Base
from bmcd.http import keys
from bmcd.http.routing import (
    Body,
    Call,
    Reply,
    RouteTable,
    collection,
    link,
    odata_type,
)
from bmcd.redfish.certificate_service import (
    CERTIFICATE_TYPES,
    COLLECTIONS,
    HTTPS_CERTIFICATES_URI,
    TRUSTED_CERTIFICATES_URI,
    certificate_body,
    certificate_uri,
    manager_of,
    rejection,
)

MANAGER_ID = "1"
NETWORK_PROTOCOL_URI = f"/redfish/v1/Managers/{MANAGER_ID}/NetworkProtocol"
SECURITY_POLICY_URI = f"/redfish/v1/Managers/{MANAGER_ID}/SecurityPolicy"
_COLLECTION_NAMES = {
    Slot.HTTPS: "HTTPS Certificates",
    Slot.TRUST: "Trusted Certificates",
}


def register(routes: RouteTable) -> None:
    """Declare NetworkProtocol, SecurityPolicy and the certificate collections."""
    routes.add(
        "/redfish/v1/Managers/{manager_id}/NetworkProtocol",
        "ManagerNetworkProtocol",
        get=get_network_protocol,
    )
    routes.add(
        "/redfish/v1/Managers/{manager_id}/NetworkProtocol/HTTPS/Certificates",
        "CertificateCollection",
        get=get_https_certificates,
        post=post_https_certificate,
    )
    routes.add(
        "/redfish/v1/Managers/{manager_id}/NetworkProtocol/HTTPS/"
        "Certificates/{cert_id}",
        "Certificate",
        get=get_https_certificate,
        delete=delete_https_certificate,
    )
    routes.add(
        "/redfish/v1/Managers/{manager_id}/SecurityPolicy",
        "SecurityPolicy",
        get=get_security_policy,
    )
    routes.add(
        "/redfish/v1/Managers/{manager_id}/SecurityPolicy/TLS/Client/"
        "TrustedCertificates",
        "CertificateCollection",
        get=get_trusted_certificates,
        post=post_trusted_certificate,
    )
    routes.add(
        "/redfish/v1/Managers/{manager_id}/SecurityPolicy/TLS/Client/"
        "TrustedCertificates/{cert_id}",
        "Certificate",
        get=get_trusted_certificate,
        delete=delete_trusted_certificate,
    )
    routes.attach("Manager", "NetworkProtocol", link(NETWORK_PROTOCOL_URI))
    routes.attach("Manager", "SecurityPolicy", link(SECURITY_POLICY_URI))


def _check_manager(call: Call) -> None:
    if call["manager_id"] != MANAGER_ID:
        raise not_found("Manager", call["manager_id"])


async def get_network_protocol(call: Call) -> Body:
    """The protocols bmcd serves, with ports from the configuration."""
    _check_manager(call)
    config = keys.CONFIG.get(call.app)
    host_name = socket.gethostname()
    # TODO(network issue: the domain comes from the DNS configuration, and
    # the other protocols and PATCH are added there).
    fqdn = host_name if "." in host_name else None
    https_port = config.listen[0].port if config.listen else None
    http_port = config.http_listen[0].port if config.http_listen else None
    return {
        "@odata.id": NETWORK_PROTOCOL_URI,
        "@odata.type": odata_type("ManagerNetworkProtocol"),
        "Id": "NetworkProtocol",
        "Name": "Manager Network Protocol",
        "Description": "The network services of this BMC",
        "HostName": host_name.split(".", 1)[0],
        "FQDN": fqdn,
        "HTTP": {"Port": http_port, "ProtocolEnabled": bool(config.http_listen)},
        "HTTPS": {
            "Port": https_port,
            "ProtocolEnabled": bool(config.listen),
            "Certificates": link(HTTPS_CERTIFICATES_URI),
        },
        "Status": {"State": "Enabled", "Health": "OK"},
    }


async def get_security_policy(call: Call) -> Body:
    """How bmcd uses TLS: the CAs it trusts when it connects out."""
    _check_manager(call)
    return {
        "@odata.id": SECURITY_POLICY_URI,
        "@odata.type": odata_type("SecurityPolicy"),
        "Id": "SecurityPolicy",
        "Name": "Security Policy",
        "Description": "TLS policy of this BMC",
        "Status": {"State": "Enabled", "Health": "OK"},
        "TLS": {
            "Client": {
                "VerifyCertificate": True,
                "TrustedCertificates": link(TRUSTED_CERTIFICATES_URI),
            },
            # Clients authenticate over HTTP; no client certificates.
            "Server": {"VerifyCertificate": False},
        },
    }


async def _collection(call: Call, slot: Slot) -> Body:
    _check_manager(call)
    installed = await manager_of(call).installed(slot)
    return collection(
        COLLECTIONS[slot],
        "CertificateCollection",
        _COLLECTION_NAMES[slot],
        [certificate_uri(s) for s in installed],
    )


async def _certificate(call: Call, slot: Slot) -> Body:
    _check_manager(call)
    stored = await manager_of(call).get(slot, call["cert_id"])
    if stored is None:
        raise not_found("Certificate", call["cert_id"])
    return certificate_body(stored)


async def _install(call: Call, slot: Slot) -> Reply:
    _check_manager(call)
    body = call.body()
    fields = ("CertificateString", "CertificateType")
    check_properties("Certificate", body, fields, required=fields)
    for name in fields:
        if not isinstance(body[name], str):
            raise RedfishError.of(
                HTTPStatus.BAD_REQUEST,
                Base.PropertyValueTypeError,
                "null",
                name,
                related=f"#/{name}",
            )
    if body["CertificateType"] not in CERTIFICATE_TYPES:
        raise RedfishError.of(
            HTTPStatus.BAD_REQUEST,
            Base.PropertyValueNotInList,
            body["CertificateType"],
            "CertificateType",
            related="#/CertificateType",
        )
    try:
        stored = await manager_of(call).install(slot, body["CertificateString"])
    except CertificateRejected as err:
        raise rejection(err) from None
    uri = certificate_uri(stored)
    return Reply(certificate_body(stored), HTTPStatus.CREATED, {"Location": uri})


async def _delete(call: Call, slot: Slot) -> Reply:
    _check_manager(call)
    try:
        await manager_of(call).delete(slot, call["cert_id"])
    except KeyError:
        raise not_found("Certificate", call["cert_id"]) from None
    except CertificateRejected as err:
        raise rejection(err) from None
    return Reply(None, HTTPStatus.NO_CONTENT)


async def get_https_certificates(call: Call) -> Body:
    """The HTTPS server certificate collection (one member)."""
    return await _collection(call, Slot.HTTPS)


async def post_https_certificate(call: Call) -> Reply:
    """Install a new HTTPS certificate; it replaces the one served now."""
    return await _install(call, Slot.HTTPS)


async def get_https_certificate(call: Call) -> Body:
    """The certificate the HTTPS server presents."""
    return await _certificate(call, Slot.HTTPS)


async def delete_https_certificate(call: Call) -> Reply:
    """Refused: the server always needs a certificate."""
    return await _delete(call, Slot.HTTPS)


async def get_trusted_certificates(call: Call) -> Body:
    """The CA certificates bmcd trusts for outbound TLS."""
    return await _collection(call, Slot.TRUST)


async def post_trusted_certificate(call: Call) -> Reply:
    """Add a CA certificate to the trust store."""
    return await _install(call, Slot.TRUST)


async def get_trusted_certificate(call: Call) -> Body:
    """One trusted CA certificate."""
    return await _certificate(call, Slot.TRUST)


async def delete_trusted_certificate(call: Call) -> Reply:
    """Remove a CA certificate from the trust store."""
    return await _delete(call, Slot.TRUST)
