//! Who may send which command (`docs/contract.md` §13): decided by the
//! broker-authenticated sender (`user_id`) and its principal, never by the
//! `actor` in the body, which only names the person who acted within the
//! sender's scope. Checked before the petition's state.

use crate::domain::{Action, Command};
use crate::identity::{Kind, Principal};

use super::{Refusal, State};

/// The kind of principal that may send `action`.
pub fn kind_for(action: &Action) -> Kind {
    match action {
        Action::Accept | Action::Progress { .. } | Action::Resolve { .. } | Action::Refuse { .. } | Action::Escalate { .. } => {
            Kind::Handler
        }
        Action::Transfer { .. } => Kind::Dispatcher,
        Action::Approve | Action::Return { .. } => Kind::Reviewer,
        // The citizen's channel vouches for the citizen.
        Action::Rate { .. } => Kind::Adapter,
    }
}

/// The sender's principal, if it may send `action` at all: a command
/// without `user_id` is `unauthenticated`; a user with no principal
/// (`principal` is the one found for `user_id`), or a principal of
/// another kind, is `forbidden`.
pub fn sender<'a>(user_id: Option<&str>, principal: Option<&'a Principal>, action: &Action) -> Result<&'a Principal, Refusal> {
    user_id.filter(|u| !u.is_empty()).ok_or(Refusal::Unauthenticated)?;
    let principal = principal.ok_or(Refusal::Forbidden)?;
    if principal.kind != kind_for(action) {
        return Err(Refusal::Forbidden);
    }
    Ok(principal)
}

/// Whether `cmd` from `sender` is within the sender's scope for the
/// petition in state `s`: a handler's or dispatcher's unit subtree holds
/// the petition (and a transfer's target), and the `actor.unit` it names;
/// a rating comes from the adapter of the petition's own channel, for the
/// citizen who filed it.
pub fn in_scope(sender: &Principal, cmd: &Command, s: &State) -> Result<(), Refusal> {
    match sender.kind {
        Kind::Handler | Kind::Dispatcher => {
            if !sender.covers(s.unit) {
                return Err(Refusal::WrongUnit);
            }
            if let Action::Transfer { unit } = &cmd.action
                && !sender.covers(unit)
            {
                return Err(Refusal::WrongUnit);
            }
            if cmd.actor.unit.as_ref().is_some_and(|u| !sender.covers(u)) {
                return Err(Refusal::WrongUnit);
            }
            Ok(())
        }
        Kind::Adapter => {
            if sender.channel != Some(s.channel) {
                return Err(Refusal::Forbidden);
            }
            if cmd.actor.id != s.citizen_id {
                return Err(Refusal::NotCitizen);
            }
            Ok(())
        }
        Kind::Reviewer => Ok(()),
        Kind::Supervisor | Kind::Pipeline => Err(Refusal::Forbidden),
    }
}

/// The acting person as the audit trail (events) records them: the body's
/// `actor.id` and unit, with the role and broker `user` of the sender (its
/// principal's kind and name). A citizen is recorded by role only: events are read widely, and the
/// petition already says who filed it.
pub fn audit_actor(sender: &Principal, cmd: &Command) -> serde_json::Value {
    match sender.kind {
        Kind::Adapter => serde_json::json!({ "role": "citizen" }),
        _ => {
            let mut actor = serde_json::json!({ "id": cmd.actor.id, "role": sender.kind.as_str(), "user": sender.user });
            if let Some(unit) = cmd.actor.unit.as_ref().or(sender.unit.as_ref()) {
                actor["unit"] = serde_json::json!(unit);
            }
            actor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, ActorRole, Channel, PetitionId, Rating};
    use crate::identity::Principals;

    const PRINCIPALS: &str = r#"
        [[principal]]
        user = "tuandao-app"
        kind = "handler"
        unit = "shinan.badaxia.tuandao"
        [[principal]]
        user = "district"
        kind = "dispatcher"
        unit = "shinan.badaxia"
        [[principal]]
        user = "hotline"
        kind = "adapter"
        channel = "hotline"
        [[principal]]
        user = "wechat"
        kind = "adapter"
        channel = "wechat"
        [[principal]]
        user = "reviewer"
        kind = "reviewer"
        [[principal]]
        user = "nuannan"
        kind = "pipeline"
    "#;

    fn command(actor_role: ActorRole, actor_unit: Option<&str>, action: Action) -> Command {
        Command {
            id: "c1".into(),
            petition_id: "20261123-000001".parse::<PetitionId>().unwrap(),
            actor: Actor { id: "openid-1".into(), role: actor_role, unit: actor_unit.map(|u| u.parse().unwrap()) },
            at: chrono::Utc::now(),
            action,
        }
    }

    fn check(user: Option<&str>, cmd: &Command, unit: &str, channel: Channel) -> Result<(), Refusal> {
        let principals = Principals::parse(PRINCIPALS).unwrap().principals;
        let unit = unit.parse().unwrap();
        let s = State {
            status: crate::domain::Status::Assigned,
            unit: &unit,
            citizen_id: "openid-1",
            channel,
            clocks: Default::default(),
            deadlines: crate::domain::Deadlines { respond_by: chrono::Utc::now(), resolve_by: chrono::Utc::now() },
            working_days: 2,
            unsatisfied: 0,
            breached_here: false,
        };
        let p = sender(user, user.and_then(|u| principals.get(u)), &cmd.action)?;
        in_scope(p, cmd, &s)
    }

    const TUANDAO: &str = "shinan.badaxia.tuandao";

    #[test]
    fn the_sender_decides_not_the_body() {
        let accept = command(ActorRole::Handler, Some(TUANDAO), Action::Accept);
        assert_eq!(check(None, &accept, TUANDAO, Channel::App), Err(Refusal::Unauthenticated));
        assert_eq!(check(Some(""), &accept, TUANDAO, Channel::App), Err(Refusal::Unauthenticated));
        assert_eq!(check(Some("stranger"), &accept, TUANDAO, Channel::App), Err(Refusal::Forbidden));
        assert_eq!(check(Some("tuandao-app"), &accept, TUANDAO, Channel::App), Ok(()));
        assert_eq!(check(Some("tuandao-app"), &accept, "shinan.badaxia.tuandao.g001", Channel::App), Ok(()));
        // Whatever the body says, the handler's principal is tuandao's.
        let claims = command(ActorRole::Handler, Some("shinan.zhongshanlu"), Action::Accept);
        assert_eq!(check(Some("tuandao-app"), &claims, "shinan.zhongshanlu", Channel::App), Err(Refusal::WrongUnit));
        assert_eq!(check(Some("tuandao-app"), &claims, TUANDAO, Channel::App), Err(Refusal::WrongUnit), "actor outside the scope");
        assert_eq!(check(Some("tuandao-app"), &accept, "shinan.badaxia", Channel::App), Err(Refusal::WrongUnit));
        let approve = command(ActorRole::Reviewer, None, Action::Approve);
        assert_eq!(check(Some("tuandao-app"), &approve, TUANDAO, Channel::App), Err(Refusal::Forbidden));
        assert_eq!(check(Some("reviewer"), &approve, TUANDAO, Channel::App), Ok(()));
        assert_eq!(check(Some("nuannan"), &approve, TUANDAO, Channel::App), Err(Refusal::Forbidden), "the pipeline sends no commands");
    }

    #[test]
    fn only_the_origin_channel_rates_for_its_citizen() {
        let rate = command(ActorRole::Citizen, None, Action::Rate { rating: Rating::Satisfied, comment: None });
        assert_eq!(check(Some("wechat"), &rate, TUANDAO, Channel::Wechat), Ok(()));
        assert_eq!(check(Some("hotline"), &rate, TUANDAO, Channel::Wechat), Err(Refusal::Forbidden));
        assert_eq!(check(Some("reviewer"), &rate, TUANDAO, Channel::Wechat), Err(Refusal::Forbidden));
        let mut stranger = rate.clone();
        stranger.actor.id = "openid-2".into();
        assert_eq!(check(Some("wechat"), &stranger, TUANDAO, Channel::Wechat), Err(Refusal::NotCitizen));
    }

    #[test]
    fn a_dispatcher_transfers_within_its_subtree() {
        let inside = command(ActorRole::Dispatcher, None, Action::Transfer { unit: "shinan.badaxia.tuandao".parse().unwrap() });
        assert_eq!(check(Some("district"), &inside, "shinan.badaxia", Channel::App), Ok(()));
        let outside = command(ActorRole::Dispatcher, None, Action::Transfer { unit: "shinan.zhongshanlu".parse().unwrap() });
        assert_eq!(check(Some("district"), &outside, "shinan.badaxia", Channel::App), Err(Refusal::WrongUnit));
        assert_eq!(check(Some("district"), &inside, "shinan", Channel::App), Err(Refusal::WrongUnit));
    }
}
