//! Application security groups (issue 15, point 3): members in one VNet, and a group in use
//! is not deleted.

use tessera_engine::Change;
use tessera_model::envelope::Tracked;
use tessera_model::security::{ApplicationSecurityGroup, AsgProperties};
use tessera_model::{Kind, Resource};

use crate::fixture::*;

fn asg(name: &str) -> ApplicationSecurityGroup {
    Tracked {
        id: top(Kind::ApplicationSecurityGroup, name),
        name: String::new(),
        kind: String::new(),
        location: "westeurope".into(),
        tags: Default::default(),
        etag: None,
        properties: AsgProperties::default(),
    }
}

#[test]
fn an_asgs_members_are_in_one_vnet_and_a_group_in_use_stays() {
    let mut e = base();
    ok(&mut e, put(Resource::ApplicationSecurityGroup(asg("web"))));
    let web = top(Kind::ApplicationSecurityGroup, "web");
    let mut a = new_nic(&e, "a-nic", subnet_id("lonely", "default"), None);
    a.properties.ip_configurations[0].properties.application_security_groups = vec![sub(web.clone())];
    ok(&mut e, put(Resource::NetworkInterface(a)));
    // A NIC of another VNet cannot join it.
    let mut b = new_nic(&e, "b-nic", subnet_id("hub", "default"), None);
    b.properties.ip_configurations[0].properties.application_security_groups = vec![sub(web.clone())];
    assert_refused(&mut e, put(Resource::NetworkInterface(b)), "ApplicationSecurityGroupMembersInDifferentVnets", 400);
    assert_refused(&mut e, Change::Delete(web.clone()), "ApplicationSecurityGroupInUse", 400);
    let mut ghost = new_nic(&e, "c-nic", subnet_id("lonely", "default"), None);
    ghost.properties.ip_configurations[0].properties.application_security_groups =
        vec![sub(top(Kind::ApplicationSecurityGroup, "ghost"))];
    assert_refused(&mut e, put(Resource::NetworkInterface(ghost)), "InvalidResourceReference", 400);
    // Once its member goes, it may go.
    ok(&mut e, Change::Delete(top(Kind::NetworkInterface, "a-nic")));
    ok(&mut e, Change::Delete(web));
}

#[test]
fn a_rule_names_prefixes_or_groups_on_a_side_not_both_and_only_groups_that_exist() {
    let mut e = base();
    ok(&mut e, put(Resource::ApplicationSecurityGroup(asg("web"))));
    let mut n = nsg(&e, "nsg-nic");
    let mut rule = nsg(&e, "nsg1").properties.security_rules[0].clone();
    rule.name = "from-web".into();
    rule.properties.priority = 4000;
    rule.properties.source_address_prefix = None;
    rule.properties.source_address_prefixes.clear();
    rule.properties.source_application_security_groups = vec![sub(top(Kind::ApplicationSecurityGroup, "web"))];
    n.properties.security_rules.push(rule.clone());
    ok(&mut e, put(Resource::NetworkSecurityGroup(n.clone())));
    let mut both = n.clone();
    both.properties.security_rules.last_mut().expect("rule").properties.source_address_prefix = Some("*".into());
    assert_refused(
        &mut e,
        put(Resource::NetworkSecurityGroup(both)),
        "SecurityRuleParameterContainsUnsupportedValue",
        400,
    );
    let mut ghost = n;
    ghost.properties.security_rules.last_mut().expect("rule").properties.source_application_security_groups =
        vec![sub(top(Kind::ApplicationSecurityGroup, "ghost"))];
    assert_refused(&mut e, put(Resource::NetworkSecurityGroup(ghost)), "InvalidResourceReference", 400);
    assert_refused(
        &mut e,
        Change::Delete(top(Kind::ApplicationSecurityGroup, "web")),
        "ApplicationSecurityGroupInUse",
        400,
    );
}

#[test]
fn application_security_groups_per_subscription_and_region_are_limited() {
    let mut e = with_limits(tessera_engine::Limits { asgs_per_subscription: 1, ..Default::default() });
    ok(&mut e, put(Resource::ApplicationSecurityGroup(asg("one"))));
    assert_refused(
        &mut e,
        put(Resource::ApplicationSecurityGroup(asg("two"))),
        "ApplicationSecurityGroupCountLimitReached",
        400,
    );
    ok(&mut e, put(Resource::ApplicationSecurityGroup(asg("one"))));
}
