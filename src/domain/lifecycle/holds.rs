//! Holds (general terms 4.1.5; privacy policy 5.8): placing and releasing
//! them on a resource or a whole tenant.

use super::*;

/// Places the hold of a `hold.placed` event on `holds` (of a resource or a
/// tenant, named by `scope` in messages). Ok(false) when a release of the
/// same hold dated after the placement is already known: the late
/// placement is moot. Err for a hold id already in force.
pub(super) fn place_hold(
    holds: &mut Vec<Hold>,
    released: &[(String, Timestamp)],
    ev: &Event,
    scope: &str,
) -> Result<bool, Rejection> {
    let EventBody::HoldPlaced { hold_id, authority, reason } = &ev.body else {
        return Ok(false);
    };
    // A placement dated at its release's instant that arrives after it is
    // a new placement (arrival order breaks ties; the safe side, too).
    if released.iter().any(|(id, rel)| id == hold_id && ev.at < *rel) {
        return Ok(false);
    }
    if holds.iter().any(|h| &h.hold_id == hold_id) {
        return Err(Rejection::new(format!("hold {hold_id:?} is already placed on {scope}")));
    }
    holds.push(Hold {
        hold_id: hold_id.clone(),
        authority: authority.clone(),
        reason: reason.clone(),
        tenant_wide: ev.resource.is_none(),
        placed_at: ev.at,
    });
    Ok(true)
}

/// Lifts a hold and remembers when (so a late placement stays moot). A hold
/// not in force is a retryable rejection: its placement may yet arrive.
pub(super) fn release_hold(
    holds: &mut Vec<Hold>,
    released: &mut Vec<(String, Timestamp)>,
    hold_id: &str,
    at: Timestamp,
    scope: &str,
) -> Result<(), Rejection> {
    let Some(pos) = holds.iter().position(|h| h.hold_id == hold_id) else {
        return Err(Rejection { message: format!("hold {hold_id:?} is not placed on {scope}"), retryable: true });
    };
    holds.remove(pos);
    released.push((hold_id.to_string(), at));
    Ok(())
}

/// Holds placed on a whole tenant, kept so that resources created later are
/// covered too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantHolds {
    /// Holds in force on the tenant.
    pub holds: Vec<Hold>,
    /// Released tenant hold ids and when.
    pub released: Vec<(String, Timestamp)>,
}

impl TenantHolds {
    /// Applies a tenant-wide `hold.placed` or `hold.released`; Err for an
    /// event that the tenant's holds forbid.
    pub fn apply(&mut self, ev: &Event) -> Result<(), Rejection> {
        match &ev.body {
            EventBody::HoldPlaced { .. } => {
                place_hold(&mut self.holds, &self.released, ev, &format!("tenant {:?}", ev.tenant)).map(|_| ())
            }
            EventBody::HoldReleased { hold_id } => {
                release_hold(&mut self.holds, &mut self.released, hold_id, ev.at, &format!("tenant {:?}", ev.tenant))
            }
            _ => Ok(()),
        }
    }
}
