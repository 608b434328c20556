//! Checks shared by every resource type: names, regions, subscriptions, references.

use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use crate::state::State;

/// ARM resource names: 1–80 characters, word characters, `.` and `-`; begins with a word
/// character and ends with a word character or `_`.
pub(crate) fn check_name(id: &ResourceId, max: usize) -> ArmResult<()> {
    let name = id.name();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = !name.is_empty()
        && name.len() <= max
        && name.chars().all(|c| word(c) || c == '.' || c == '-')
        && name.chars().next().is_some_and(word)
        && name.chars().last().is_some_and(word);
    if ok {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "InvalidResourceName",
        format!(
            "Resource name {name} is invalid. The name can be up to {max} characters long. It must begin with a word \
             character, and it must end with a word character or with '_'. The name may contain word characters or '.', '-', '_'."
        ),
    )
    .target(id.as_str()))
}

/// The checks and normal form every tracked resource shares: a valid name (at most `max`
/// characters), a known subscription and region; name and type taken from the id.
pub(crate) fn normalize_tracked<P>(
    st: &State,
    r: &mut tessera_model::envelope::Tracked<P>,
    max: usize,
) -> ArmResult<ResourceId> {
    let id = r.id.clone();
    check_name(&id, max)?;
    check_subscription(st, &id)?;
    r.location = check_location(&r.location, &id)?;
    r.name = id.name().to_string();
    r.kind = id.kind().arm_type().to_string();
    Ok(id)
}

/// A per-subscription, per-region quota (§2.5): refuses a new resource when `max` of its kind
/// already live in the subscription and region of `id`.
pub(crate) fn check_region_quota<'a, P: 'a>(
    code: &str,
    what: &str,
    max: usize,
    items: impl Iterator<Item = &'a tessera_model::envelope::Tracked<P>>,
    id: &ResourceId,
    location: &str,
) -> ArmResult<()> {
    let n =
        items.filter(|r| r.id.subscription().eq_ignore_ascii_case(id.subscription()) && r.location == location).count();
    if n < max {
        return Ok(());
    }
    Err(limit(code, format!("Cannot create more than {max} {what} for this subscription in this region."), id))
}

/// The region must be known.
pub(crate) fn check_location(location: &str, id: &ResourceId) -> ArmResult<String> {
    let loc = tessera_model::location::require(location, id.as_str())?;
    Ok(loc.name.to_string())
}

/// The subscription must exist.
pub(crate) fn check_subscription(st: &State, id: &ResourceId) -> ArmResult<()> {
    if st.subscriptions.contains_key(&id.subscription().to_ascii_lowercase()) {
        return Ok(());
    }
    Err(ArmError::with_status(
        404,
        "SubscriptionNotFound",
        format!("The subscription '{}' could not be found.", id.subscription()),
    ))
}

/// A reference from `from` to a resource that must exist.
pub(crate) fn missing_reference(target: &ResourceId, from: &ResourceId) -> ArmError {
    ArmError::bad_request(
        "InvalidResourceReference",
        format!("Resource {target} referenced by resource {from} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
    )
    .target(from.as_str())
}

/// The reference must name a resource of the expected kind.
pub(crate) fn check_kind(target: &ResourceId, kind: Kind, from: &ResourceId) -> ArmResult<()> {
    if target.kind() == kind {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "InvalidResourceReference",
        format!("Resource {target} referenced by resource {from} is not a {}.", kind.arm_type()),
    )
    .target(from.as_str()))
}

/// A limit was reached.
pub(crate) fn limit(code: &str, message: String, id: &ResourceId) -> ArmError {
    ArmError::bad_request(code, message).target(id.as_str())
}

/// Deterministic GUIDs: the engine takes no randomness, so GUIDs are a hash of the id and a
/// sequence number (a VNet recreated under the same name gets a new GUID, P5).
pub(crate) fn guid(seed: &str, seq: u64) -> String {
    let h = |salt: u64| {
        let mut x: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in seed.bytes().chain(seq.to_le_bytes()) {
            x ^= u64::from(b);
            x = x.wrapping_mul(0x0100_0000_01b3);
        }
        x
    };
    let (a, b) = (h(0x9e37_79b9_7f4a_7c15), h(0x2545_f491_4f6c_dd1d));
    let v = (u128::from(a) << 64 | u128::from(b)) & !(0xF000u128 << 64) | (0x4000u128 << 64);
    let v = v & !(0xC000_0000_0000_0000u128) | 0x8000_0000_0000_0000u128;
    fmt_guid(v)
}

/// The GUID of a resource: kept for the life of the resource; on creation, the one given (an
/// imported document carries it; the API clears read-only fields before it calls the engine) or
/// a new one.
pub(crate) fn keep_guid(existing: Option<&str>, given: Option<&str>, seed: &str, seq: u64) -> String {
    if let Some(g) = existing {
        return g.to_string();
    }
    match given.and_then(parse_guid) {
        Some(v) => fmt_guid(v),
        None => guid(seed, seq),
    }
}

/// Formats 128 bits as a GUID.
pub(crate) fn fmt_guid(v: u128) -> String {
    let s = format!("{v:032x}");
    format!("{}-{}-{}-{}-{}", &s[0..8], &s[8..12], &s[12..16], &s[16..20], &s[20..32])
}

/// Parses a GUID to 128 bits.
pub(crate) fn parse_guid(g: &str) -> Option<u128> {
    let hex = g.replace('-', "");
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// A referenced resource must be in the same region as the one referring to it.
pub(crate) fn check_same_region(
    from: &ResourceId,
    from_location: &str,
    target: &ResourceId,
    target_location: &str,
) -> ArmResult<()> {
    if from_location.eq_ignore_ascii_case(target_location) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "InvalidResourceReference",
        format!(
            "Resource {target} referenced by resource {from} is in region {target_location}, but {from} is in {from_location}. \
             Both resources must be in the same region."
        ),
    )
    .target(from.as_str()))
}

/// Child names must be unique within their parent (case-insensitively).
pub(crate) fn check_unique_names<'a>(
    parent: &ResourceId,
    what: &str,
    names: impl Iterator<Item = &'a str>,
) -> ArmResult<()> {
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        if seen.iter().any(|m| m.eq_ignore_ascii_case(n)) {
            return Err(ArmError::bad_request("DuplicateResourceName", format!("{parent} has two {what} named {n}."))
                .target(parent.as_str()));
        }
        seen.push(n);
    }
    Ok(())
}
