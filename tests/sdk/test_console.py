"""The web console (issue 19) in Debian's Chromium, driven by Playwright, against a `tessera serve`
of its own holding the example hub and spoke (examples/hub-spoke-nva.yaml). Each test saves
screenshots under target/console-screenshots/ for review."""

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from conftest import ROOT, Server, free_port, tessera_binary

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
SHOTS = ROOT / "target" / "console-screenshots"
RG = "network-rg"


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Debian's chromium is needed (apt-get install chromium)"
    return found


class Console:
    """The server, its admin's and a Reader's credentials, and a browser."""

    def __init__(self, server: Server, browser):
        self.server, self.browser = server, browser
        c = server.creds
        self.tenant, self.sub = c["tenantId"], c["subscriptionId"]
        self.admin = (c["clientId"], c["clientSecret"])
        self.token = server.token()
        self.pages = []

    def arm(self, method, path, body=None, api="2024-05-01"):
        sep = "&" if "?" in path else "?"
        r = requests.request(method, f"{self.server.endpoint}{path}{sep}api-version={api}", json=body,
                             headers={"Authorization": f"Bearer {self.token}"}, verify=self.server.ca, timeout=30)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.text else None

    def forget(self, path):
        """Deletes what may or may not be there (putting the example back after a test)."""
        requests.delete(f"{self.server.endpoint}{path}?api-version=2024-05-01",
                        headers={"Authorization": f"Bearer {self.token}"}, verify=self.server.ca, timeout=30)

    def vnet(self, name):
        return f"/subscriptions/{self.sub}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/{name}"

    def link(self, vnet, name, remote, **flags):
        body = {"properties": {"remoteVirtualNetwork": {"id": self.vnet(remote)}, **flags}}
        return self.arm("PUT", f"{self.vnet(vnet)}/virtualNetworkPeerings/{name}", body)

    def open(self, who=None, page: Page = None) -> Page:
        """A new page (or `page`, at the login page already) signed in through the login page as
        `who` (the admin by default)."""
        if page is None:
            page = self.browser.new_page(ignore_https_errors=True, viewport={"width": 1400, "height": 860})
            self.pages.append(page)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.errors = errors
            page.goto(f"{self.server.endpoint}/console/")
        self.sign_in(page, who or self.admin)
        expect(page.locator("g.vnet[data-name=hub]")).to_be_visible(timeout=15000)
        return page

    def sign_in(self, page: Page, who):
        client_id, secret = who
        page.get_by_label("Tenant ID").fill(self.tenant)
        page.get_by_label("Client ID").fill(client_id)
        page.get_by_label("Client secret").fill(secret)
        page.get_by_role("button", name="Sign in").click()


def check(page: Page, source: str, destination: str, port: str):
    """Runs the connectivity form from one VM to another on a TCP port; its region."""
    page.get_by_role("tab", name="Connectivity").click()
    form = page.get_by_role("region", name="Connectivity check")
    form.get_by_label("From VM").select_option(label=source)
    form.get_by_label("To VM").select_option(label=destination)
    form.get_by_label("Port").fill(port)
    form.get_by_role("button", name="Check").click()
    return form


def shot(page: Page, name: str):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def edge(page: Page, a: str, b: str):
    """The line between two VNets, whichever way round the map keeps it."""
    return page.locator(f"g.edge[data-a={a}][data-b={b}], g.edge[data-a={b}][data-b={a}]")


@pytest.fixture(scope="module")
def console():
    with tempfile.TemporaryDirectory(prefix="tessera-console-") as d:
        server = Server(Path(d), free_port())
        try:
            subprocess.run([tessera_binary(), "apply", "-f", str(ROOT / "examples" / "hub-spoke-nva.yaml"),
                            "--credentials", str(Path(d) / "credentials.json")], check=True, capture_output=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"])
                try:
                    yield Console(server, browser)
                finally:
                    browser.close()
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def pages_closed(console):
    """Each test's pages are closed after it (each follows the change poll while open)."""
    yield
    for page in console.pages:
        page.close()
    console.pages.clear()


def peered_both_ways(console, a, b, **flags):
    """Puts back the example's link pair between a and b (after a test changed it)."""
    for (x, y) in [(a, b), (b, a)]:
        console.forget(f"{console.vnet(x)}/virtualNetworkPeerings/{x}-to-{y}")
    console.link(a, f"{a}-to-{b}", b, **flags)
    console.link(b, f"{b}-to-{a}", a, **flags)


def test_the_example_hub_and_spoke_renders_its_vnets_and_peerings(console):
    page = console.open()
    names = page.locator("g.vnet").evaluate_all("ns => ns.map(n => n.dataset.name).sort()")
    assert names == ["hub", "spoke1", "spoke2"]
    pairs = page.locator("g.edge").evaluate_all(
        "es => es.map(e => [[e.dataset.a, e.dataset.b].sort().join('-'), e.dataset.state]).sort()")
    assert pairs == [["hub-spoke1", "Connected"], ["hub-spoke2", "Connected"]]
    # Regional links, forwarded traffic allowed both ways, the appliance in the hub.
    expect(edge(page, "hub", "spoke1").locator("text.flags")).to_have_text("Connected · fwd / fwd")
    expect(page.locator("g.vnet[data-name=hub] text.region")).to_contain_text("NVA×1")
    assert "regional" in edge(page, "hub", "spoke2").get_attribute("aria-label")
    shot(page, "01-hub-and-spoke")

    # The keyboard opens a VNet: focus the hub, Enter.
    page.locator("g.vnet[data-name=hub]").focus()
    page.keyboard.press("Enter")
    details = page.get_by_role("complementary", name="Details")
    expect(details.get_by_role("heading", name="hub")).to_be_visible()
    expect(details.locator("tr[data-link=hub-to-spoke1] td.state")).to_have_text("Connected")
    expect(details.locator("tr[data-link=hub-to-spoke1]")).to_contain_text("FullyInSync")

    # A NIC's effective routes (a VNetPeering route for each spoke) and security rules.
    page.locator("button[data-nic=hub-vm-nic]").click()
    routes = details.locator("table.effective-routes")
    expect(routes.locator("tr", has_text="10.1.0.0/16")).to_contain_text("VNetPeering")
    expect(routes.locator("tr", has_text="10.2.0.0/16")).to_contain_text("VNetPeering")
    expect(details.get_by_text("No network security group applies.")).to_be_visible()
    spoke2 = page.locator("g.vnet[data-name=spoke2]")
    spoke2.click()
    page.locator("button[data-nic=spoke2-vm-nic]").click()
    expect(details.locator("table.effective-rules tr", has_text="deny-rdp")).to_contain_text("Deny")
    expect(details.locator("table.effective-routes tr", has_text="10.1.0.0/16")).to_contain_text("VirtualAppliance")
    shot(page, "02-nic-effective-routes-and-rules")
    assert page.errors == []


def test_a_peering_made_through_the_api_appears_without_a_reload(console):
    page = console.open()
    page.evaluate("window.__sameDocument = true")
    expect(edge(page, "spoke1", "spoke2")).to_have_count(0)
    try:
        console.link("spoke1", "spoke1-to-spoke2", "spoke2")
        expect(edge(page, "spoke1", "spoke2")).to_have_attribute("data-state", "Initiated", timeout=15000)
        shot(page, "03-peering-initiated")
        console.link("spoke2", "spoke2-to-spoke1", "spoke1", allowGatewayTransit=False)
        expect(edge(page, "spoke1", "spoke2")).to_have_attribute("data-state", "Connected", timeout=15000)
        assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        shot(page, "04-peering-connected")
    finally:
        for (a, b) in [("spoke1", "spoke2"), ("spoke2", "spoke1")]:
            console.forget(f"{console.vnet(a)}/virtualNetworkPeerings/{a}-to-{b}")
    expect(edge(page, "spoke1", "spoke2")).to_have_count(0, timeout=15000)
    assert page.errors == []


def test_the_connectivity_form_shows_the_blocking_nsg_rule(console):
    page = console.open()
    form = check(page, "spoke1-vm", "spoke2-vm", "3389")
    expect(form.locator(".status")).to_have_text("Unreachable", timeout=15000)
    # The path goes through the hub's appliance; the last hop is blocked by spoke2-nsg's rule.
    hops = form.locator("li.hop")
    assert hops.evaluate_all("hs => hs.map(h => h.dataset.type)") == ["Source", "VirtualAppliance", "Destination"]
    blocking = form.locator("li.hop.blocking")
    expect(blocking).to_have_count(1)
    expect(blocking.locator("dd.culprit")).to_have_text("securityRules/deny-rdp")
    expect(blocking).to_contain_text("spoke2-nsg")
    expect(page.locator("g.vnet.blocked")).to_have_attribute("data-name", "spoke2")
    expect(page.locator("g.vnet.on-path[data-name=hub]")).to_have_count(1)
    shot(page, "05-connectivity-blocked-by-nsg")

    # SSH is let through, and the heat map says the same: spoke1-vm reaches spoke2-vm on 22,
    # not on 3389.
    form.get_by_label("Port").fill("22")
    form.get_by_role("button", name="Check").click()
    expect(form.locator(".status")).to_have_text("Reachable", timeout=15000)
    expect(form.locator("li.hop.blocking")).to_have_count(0)
    page.get_by_role("tab", name="Reachability").click()
    heat = page.get_by_role("region", name="Reachability matrix")
    expect(heat.locator("td[data-from=spoke1-vm][data-to=spoke2-vm]")).to_have_class("yes", timeout=15000)
    heat.get_by_label("Port").fill("3389")
    heat.get_by_label("Port").press("Tab")
    expect(heat.locator("td[data-from=spoke1-vm][data-to=spoke2-vm]")).to_have_class("no", timeout=15000)
    expect(heat.locator("td[data-from=spoke2-vm][data-to=spoke1-vm]")).to_have_class("yes")
    shot(page, "06-reachability-heat-map")
    # A red cell explains itself: the connectivity check of its pair.
    heat.locator("td[data-from=spoke1-vm][data-to=spoke2-vm] button").click()
    expect(form.locator("li.hop.blocking dd.culprit")).to_have_text("securityRules/deny-rdp", timeout=15000)
    assert page.errors == []


def test_a_link_deleted_on_one_side_turns_disconnected(console):
    page = console.open()
    expect(edge(page, "hub", "spoke2")).to_have_attribute("data-state", "Connected")
    try:
        console.arm("DELETE", f"{console.vnet('hub')}/virtualNetworkPeerings/hub-to-spoke2")
        expect(edge(page, "hub", "spoke2")).to_have_attribute("data-state", "Disconnected", timeout=15000)
        edge(page, "hub", "spoke2").click()
        details = page.get_by_role("complementary", name="Details")
        expect(details.locator("tr[data-link=spoke2-to-hub] td.state")).to_have_text("Disconnected")
        expect(details).to_contain_text("one side has no link")
        shot(page, "07-link-deleted-disconnected")
    finally:
        # The Disconnected link is deleted and both made again: Connected once more.
        peered_both_ways(console, "hub", "spoke2", allowForwardedTraffic=True)
    expect(edge(page, "hub", "spoke2")).to_have_attribute("data-state", "Connected", timeout=15000)
    assert page.errors == []


def test_a_reader_sees_no_write_controls(console):
    reader, secret = str(uuid.uuid4()), "reader-" + uuid.uuid4().hex
    console.arm("PUT", f"/tessera/principals/{reader}",
                {"tenantId": console.tenant, "displayName": "console reader", "secret": secret})
    console.arm("PUT", f"/subscriptions/{console.sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                {"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
                                "principalId": reader}}, api="2022-04-01")
    page = console.open((reader, secret))
    expect(page.locator("[data-read-only]")).to_be_visible()
    page.locator("g.vnet[data-name=hub]").click()
    details = page.get_by_role("complementary", name="Details")
    expect(details.locator("tr[data-link=hub-to-spoke1]")).to_be_visible()
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    expect(page.get_by_role("form", name="Add a peering")).to_have_count(0)
    # Reading stays open to the Reader: effective routes of a NIC.
    page.locator("button[data-nic=hub-vm-nic]").click()
    expect(details.locator("table.effective-routes tr", has_text="10.1.0.0/16")).to_contain_text("VNetPeering")
    shot(page, "08-reader-no-write-controls")

    # The admin, by contrast, has them.
    admin = console.open()
    admin.locator("g.vnet[data-name=hub]").click()
    expect(admin.get_by_role("button", name="Delete").first).to_be_visible()
    expect(admin.get_by_role("form", name="Add a peering")).to_have_count(1)
    assert page.errors == [] and admin.errors == []


def test_the_counters_of_a_peering_go_up_live(console):
    """What the agents report (here posted as a host's agent would) shows on the link's row."""
    page = console.open()
    page.locator("g.vnet[data-name=hub]").click()
    row = page.get_by_role("complementary", name="Details").locator("tr[data-link=hub-to-spoke1]")
    expect(row.locator("td[data-counter=out]")).to_have_text("0 B")
    run = str(uuid.uuid4())

    def report(sequence, mib):
        pairs = [{"source": console.vnet(a), "destination": console.vnet(b), "direction": d,
                  "bytes": mib << 20, "packets": mib * 1000}
                 for (a, b) in [("hub", "spoke1")] for d in ("Egress", "Ingress")]
        console.arm("POST", "/tessera/hosts/console-host/usage", {"run": run, "sequence": sequence, "pairs": pairs})

    report(1, 3)
    expect(row.locator("td[data-counter=out]")).to_have_text("3.0 MiB", timeout=15000)
    expect(row.locator("td[data-counter=in]")).to_have_text("0 B")
    report(2, 5)
    expect(row.locator("td[data-counter=out]")).to_have_text("5.0 MiB", timeout=15000)
    # spoke1 received it: its link to the hub counts it in.
    page.locator("g.vnet[data-name=spoke1]").click()
    expect(page.locator("tr[data-link=spoke1-to-hub] td[data-counter=in]")).to_have_text("5.0 MiB", timeout=15000)
    shot(page, "09-live-peering-counters")
    assert page.errors == []


def axe(page: Page, what: str):
    """The WCAG 2 A and AA violations axe-core finds on the page (keyboard names, contrast…)."""
    source = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
    assert source.exists(), "axe-core comes with the console's packages (cd console && npm ci)"
    page.add_script_tag(content=source.read_text())
    found = page.evaluate("""async () => (await axe.run(document, {runOnly: {type: 'tag', values:
        ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations.map(v =>
        ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    assert found == [], f"{what}: {found}"


def test_the_console_meets_wcag_aa_as_axe_checks_it(console):
    # axe is injected into the page, which the page's own policy forbids: this context lifts it.
    context = console.browser.new_context(ignore_https_errors=True, bypass_csp=True,
                                          viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{console.server.endpoint}/console/")
    axe(page, "the login page")
    console.open(page=page)
    page.locator("g.vnet[data-name=spoke2]").click()
    page.locator("button[data-nic=spoke2-vm-nic]").click()
    expect(page.locator("table.effective-rules")).to_be_visible(timeout=15000)
    axe(page, "the map with a NIC's effective routes and rules")
    form = check(page, "spoke1-vm", "spoke2-vm", "3389")
    expect(form.locator("li.hop.blocking")).to_have_count(1, timeout=15000)
    axe(page, "a blocked connectivity check")
    page.get_by_role("tab", name="Reachability").click()
    expect(page.locator("table.heat")).to_be_visible(timeout=15000)
    axe(page, "the reachability heat map")
    shot(page, "10-laptop-screen-heat-map")
    context.close()


def test_a_network_contributor_of_one_group_sees_it_and_may_change_its_peerings(console):
    """Roles on a resource group only: the subscription's lists are refused, so the console reads
    what `…/resources` shows the caller, one by one; its permissions there allow peering writes."""
    who, secret = str(uuid.uuid4()), "netc-" + uuid.uuid4().hex
    console.arm("PUT", f"/tessera/principals/{who}",
                {"tenantId": console.tenant, "displayName": "group contributor", "secret": secret})
    console.arm("PUT", f"/subscriptions/{console.sub}/resourceGroups/{RG}/providers/Microsoft.Authorization/"
                f"roleAssignments/{uuid.uuid4()}",
                {"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{NETWORK_CONTRIBUTOR}",
                                "principalId": who}}, api="2022-04-01")
    page = console.open((who, secret))
    expect(page.get_by_role("alert")).to_contain_text("you may read only some of its resource groups")
    names = page.locator("g.vnet").evaluate_all("ns => ns.map(n => n.dataset.name).sort()")
    assert names == ["hub", "spoke1", "spoke2"]
    expect(page.locator("[data-read-only]")).to_have_count(0)
    page.locator("g.vnet[data-name=hub]").click()
    expect(page.get_by_role("button", name="Delete").first).to_be_visible()
    page.locator("button[data-nic=hub-vm-nic]").click()
    expect(page.locator("table.effective-routes tr", has_text="10.1.0.0/16")).to_contain_text("VNetPeering")
    shot(page, "11-group-contributor")
    assert page.errors == []


def test_gateways_load_balancers_and_global_peerings_are_drawn(console):
    """The gateway-transit and global-ILB examples on a server of their own: the hub's gateway,
    its transit flags on the spokes' lines, the ILBs, and global lines drawn apart."""
    with tempfile.TemporaryDirectory(prefix="tessera-console-") as d:
        server = Server(Path(d), free_port())
        try:
            for example in ["gateway-transit.yaml", "global-peering-ilb.yaml"]:
                subprocess.run([tessera_binary(), "apply", "-f", str(ROOT / "examples" / example),
                                "--credentials", str(Path(d) / "credentials.json")], check=True, capture_output=True)
            other = Console(server, console.browser)
            page = other.open()
            expect(page.locator("g.vnet[data-name=hub] text.region")).to_contain_text("GW")
            # The hub offers its gateway (gw-transit), spoke1 and spoke2 use it (remote-gw);
            # spoke3 is peered without transit.
            for spoke in ["spoke1", "spoke2"]:
                flags = edge(page, "hub", spoke).locator("text.flags")
                expect(flags).to_contain_text("gw-transit")
                expect(flags).to_contain_text("remote-gw")
            expect(edge(page, "hub", "spoke3").locator("text.flags")).not_to_contain_text("gw-transit")
            # The web VNet holds two internal load balancers; west is peered across regions.
            expect(page.locator("g.vnet[data-name=web] text.region")).to_contain_text("LB×2")
            expect(edge(page, "web", "west")).to_have_class("edge connected global")
            assert "global" in edge(page, "web", "west").get_attribute("aria-label")
            expect(edge(page, "web", "neighbour")).not_to_have_class("edge connected global")
            page.locator("g.vnet[data-name=web]").click()
            expect(page.get_by_role("complementary", name="Details")).to_contain_text("ilb-basic (Basic, 10.10.0.100)")
            page.locator("g.vnet[data-name=hub]").click()
            expect(page.get_by_role("complementary", name="Details")).to_contain_text("Gateways: hub-gw (Vpn)")
            shot(page, "12-gateways-load-balancers-global")
            assert page.errors == []
            for p in other.pages:
                p.close()
        finally:
            server.stop()


def test_a_second_subscription_is_drawn_and_can_be_left_off_the_map(console):
    """A VNet of another subscription of the tenant, peered with the hub (across
    subscriptions): drawn with the rest; unticking its subscription leaves it off the map."""
    other = str(uuid.uuid4())
    console.arm("PUT", f"/subscriptions/{other}", {"tenantId": console.tenant, "displayName": "second"},
                api="2022-12-01")
    console.arm("PUT", f"/subscriptions/{other}/resourcegroups/far-rg", {"location": "westeurope"}, api="2022-12-01")
    far = f"/subscriptions/{other}/resourceGroups/far-rg/providers/Microsoft.Network/virtualNetworks/far"
    console.arm("PUT", far, {"location": "westeurope",
                             "properties": {"addressSpace": {"addressPrefixes": ["10.50.0.0/16"]}}})
    try:
        console.arm("PUT", f"{far}/virtualNetworkPeerings/far-to-hub",
                    {"properties": {"remoteVirtualNetwork": {"id": console.vnet("hub")}}})
        console.arm("PUT", f"{console.vnet('hub')}/virtualNetworkPeerings/hub-to-far",
                    {"properties": {"remoteVirtualNetwork": {"id": far}}})
        page = console.open()
        expect(edge(page, "hub", "far")).to_have_attribute("data-state", "Connected", timeout=15000)
        subs = page.get_by_role("group", name="Subscriptions on the map")
        expect(subs.get_by_role("checkbox")).to_have_count(2)
        # Left off, far is only the grey end of the hub's line (its details are not shown).
        subs.get_by_label("second (1)").uncheck()
        expect(page.locator("g.vnet.unknown[data-name=far]")).to_have_count(1)
        expect(page.locator("g.vnet.unknown[data-name=hub]")).to_have_count(0)
        subs.get_by_label("second (1)").check()
        expect(page.locator("g.vnet[data-name=far]")).not_to_have_class("vnet unknown")
        expect(page.locator("g.vnet[data-name=far] text.region")).to_have_text("westeurope")
        shot(page, "13-two-subscriptions")
        assert page.errors == []
    finally:
        for link in [f"{console.vnet('hub')}/virtualNetworkPeerings/hub-to-far", f"{far}/virtualNetworkPeerings/far-to-hub"]:
            console.forget(link)
