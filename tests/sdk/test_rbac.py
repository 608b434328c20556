"""Cross-tenant peering with the unmodified Azure SDK (A4, A5): a principal of tenant 1 that is a
guest in tenant 2 creates a peering link to a VNet of tenant 2. Without a token of tenant 2 the
SDK gets 403 LinkedAuthorizationFailed; with azure-mgmt-core's AuxiliaryAuthenticationPolicy
(the `x-ms-authorization-auxiliary` header) carrying its tenant-2 token, the link is made."""

import time
import uuid

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.core.policies import AuxiliaryAuthenticationPolicy
from azure.mgmt.network import NetworkManagementClient

SCOPE = "https://management.azure.com/.default"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"


class PrincipalCredential:
    """Client credentials of one principal in one tenant, at Tessera's token endpoint."""

    def __init__(self, server, client_id, secret, tenant):
        self.server, self.client_id, self.secret, self.tenant = server, client_id, secret, tenant

    def get_token(self, *scopes, **kwargs):
        r = requests.post(f"{self.server.endpoint}/{self.tenant}/oauth2/v2.0/token",
                          data={"grant_type": "client_credentials", "client_id": self.client_id,
                                "client_secret": self.secret, "scope": scopes[0] if scopes else SCOPE},
                          verify=self.server.ca, timeout=10)
        r.raise_for_status()
        return AccessToken(r.json()["access_token"], int(time.time()) + 3000)


def call(server, token, method, path, body=None, api="2024-05-01"):
    sep = "&" if "?" in path else "?"
    r = requests.request(method, f"{server.endpoint}{path}{sep}api-version={api}", json=body,
                         headers={"Authorization": f"Bearer {token}"}, verify=server.ca, timeout=30)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.text else None


def assign(server, token, scope, role, principal):
    call(server, token, "PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
         {"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                         "principalId": principal}}, api="2022-04-01")


def network(server, credential, subscription, aux=None):
    policies = [AuxiliaryAuthenticationPolicy(aux, SCOPE)] if aux else []
    return NetworkManagementClient(credential=credential, subscription_id=subscription, base_url=server.endpoint,
                                   connection_verify=server.ca, polling_interval=0.01, per_call_policies=policies)


def test_cross_tenant_peering_needs_an_auxiliary_token(server):
    c = server.creds
    t1, s1 = c["tenantId"], c["subscriptionId"]
    t2, s2 = str(uuid.uuid4()), str(uuid.uuid4())
    admin = server.token()
    call(server, admin, "PUT", f"/subscriptions/{s2}", {"tenantId": t2, "displayName": "tenant two"}, api="2022-12-01")
    call(server, admin, "PUT", f"/tessera/principals/{c['clientId']}", {"tenantId": t1, "guestTenants": [t2]})
    admin2 = PrincipalCredential(server, c["clientId"], c["clientSecret"], t2).get_token(SCOPE).token
    call(server, admin2, "PUT", f"/subscriptions/{s2}/resourceGroups/remote-rg", {"location": "westeurope"},
         api="2022-12-01")
    remote = network(server, PrincipalCredential(server, c["clientId"], c["clientSecret"], t2), s2)
    vb = remote.virtual_networks.begin_create_or_update(
        "remote-rg", "vb", {"location": "westeurope",
                            "properties": {"addressSpace": {"addressPrefixes": ["10.62.0.0/16"]}}}).result()
    call(server, admin, "PUT", f"/subscriptions/{s1}/resourceGroups/local-rg", {"location": "westeurope"},
         api="2022-12-01")
    home = network(server, PrincipalCredential(server, c["clientId"], c["clientSecret"], t1), s1)
    home.virtual_networks.begin_create_or_update(
        "local-rg", "va", {"location": "westeurope",
                           "properties": {"addressSpace": {"addressPrefixes": ["10.61.0.0/16"]}}}).result()

    # x: tenant 1, guest of tenant 2, Network Contributor on both resource groups.
    x, secret = str(uuid.uuid4()), "x-secret-" + uuid.uuid4().hex
    call(server, admin, "PUT", f"/tessera/principals/{x}", {"tenantId": t1, "guestTenants": [t2], "secret": secret})
    assign(server, admin, f"/subscriptions/{s1}/resourceGroups/local-rg", NETWORK_CONTRIBUTOR, x)
    assign(server, admin2, f"/subscriptions/{s2}/resourceGroups/remote-rg", NETWORK_CONTRIBUTOR, x)
    x1 = PrincipalCredential(server, x, secret, t1)
    x2 = PrincipalCredential(server, x, secret, t2)
    link = {"properties": {"remoteVirtualNetwork": {"id": vb.id}, "allowVirtualNetworkAccess": True}}

    without = network(server, x1, s1)
    with pytest.raises(HttpResponseError) as refused:
        without.virtual_network_peerings.begin_create_or_update("local-rg", "va", "va-to-vb", link).result()
    assert refused.value.status_code == 403
    assert refused.value.error.code == "LinkedAuthorizationFailed"

    with_aux = network(server, x1, s1, aux=[x2])
    made = with_aux.virtual_network_peerings.begin_create_or_update("local-rg", "va", "va-to-vb", link).result()
    assert made.peering_state == "Initiated"
    va_id = f"/subscriptions/{s1}/resourceGroups/local-rg/providers/Microsoft.Network/virtualNetworks/va"
    # The other side, by x from tenant 2 with its tenant-1 token as the auxiliary one.
    back = network(server, x2, s2, aux=[x1])
    done = back.virtual_network_peerings.begin_create_or_update(
        "remote-rg", "vb", "vb-to-va",
        {"properties": {"remoteVirtualNetwork": {"id": va_id}, "allowVirtualNetworkAccess": True}}).result()
    assert done.peering_state == "Connected"
    assert with_aux.virtual_network_peerings.get("local-rg", "va", "va-to-vb").peering_state == "Connected"
