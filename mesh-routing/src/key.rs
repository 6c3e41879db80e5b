//! [`DecisionKey`]: a [`RouteDecision`] as indices into its table, for state that outlives the
//! borrow.

use crate::cluster::ClusterId;
use crate::compiled::{CompiledAction, RouteTable};
use crate::decision::{Action, Passthrough, RouteDecision, Routed};

/// An absent index in a [`DecisionKey`].
pub(crate) const NONE: u32 = u32::MAX;

/// A [`RouteDecision`] without its borrow of the table: a few indices, `Copy` and `'static`,
/// for state that outlives a borrow (a request's future across its awaits).
/// [`RouteTable::decision`] turns it back into the decision, given the table that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionKey {
    vhost: u32,
    route: u32,
    block: u32,
    action: ActionKey,
    port: u16,
}

/// The [`Action`] of a [`DecisionKey`]: what the route alone does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActionKey {
    Route { chosen: u32, cluster: ClusterId },
    UnknownSubset { chosen: u32, cluster: ClusterId },
    Redirect,
    DirectResponse,
    NoRoute,
    Passthrough(Option<ClusterId>),
}

impl RouteTable {
    /// The decision a [`DecisionKey`] of this table stands for: equal, accessor by accessor,
    /// to the one [`RouteDecision::key`] was taken from. A key of another table gives some
    /// decision of this one (never a panic); do not mix them.
    pub fn decision(&self, key: DecisionKey) -> RouteDecision<'_> {
        let vhost = self.vhosts.get(key.vhost as usize);
        let route = vhost
            .and_then(|v| v.routes.get(key.route as usize))
            .map(|r| {
                let block = (key.block != NONE).then_some(key.block as usize);
                (r, block.filter(|b| *b < r.blocks.len()))
            });
        let routed = |chosen: u32, cluster| match route.map(|(r, _)| &r.action) {
            Some(CompiledAction::Route(split)) => Some(Routed {
                chosen: chosen as usize,
                split,
                cluster,
                table: self,
            }),
            _ => None,
        };
        let action = match key.action {
            ActionKey::Route { chosen, cluster } => routed(chosen, cluster).map(Action::Route),
            ActionKey::UnknownSubset { chosen, cluster } => {
                routed(chosen, cluster).map(Action::UnknownSubset)
            }
            ActionKey::Redirect => match route.map(|(r, _)| &r.action) {
                Some(CompiledAction::Redirect(r)) => Some(Action::Redirect(r)),
                _ => None,
            },
            ActionKey::DirectResponse => match route.map(|(r, _)| &r.action) {
                Some(CompiledAction::DirectResponse(d)) => Some(Action::DirectResponse(d)),
                _ => None,
            },
            ActionKey::NoRoute => None,
            ActionKey::Passthrough(cluster) => Some(Action::Passthrough(Passthrough {
                host: cluster
                    .and_then(|c| self.dests.get(c.dest as usize))
                    .map(|d| &*d.host),
                cluster,
            })),
        };
        RouteDecision {
            table: self,
            vhost,
            route,
            action: action.unwrap_or(Action::NoRoute),
            port: key.port,
            at: (key.vhost, key.route),
        }
    }
}

impl RouteDecision<'_> {
    /// The decision as indices into its table, to keep where the borrow cannot go;
    /// [`RouteTable::decision`] gives it back.
    pub fn key(&self) -> DecisionKey {
        let action = match self.action {
            Action::Route(r) => ActionKey::Route {
                chosen: r.chosen as u32,
                cluster: r.cluster,
            },
            Action::UnknownSubset(r) => ActionKey::UnknownSubset {
                chosen: r.chosen as u32,
                cluster: r.cluster,
            },
            Action::Redirect(_) => ActionKey::Redirect,
            Action::DirectResponse(_) => ActionKey::DirectResponse,
            Action::NoRoute => ActionKey::NoRoute,
            Action::Passthrough(p) => ActionKey::Passthrough(p.cluster),
        };
        DecisionKey {
            vhost: self.at.0,
            route: self.at.1,
            block: self.route.and_then(|(_, b)| b).map_or(NONE, |b| b as u32),
            action,
            port: self.port,
        }
    }
}
