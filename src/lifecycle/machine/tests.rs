use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::clock::deadlines::default_policy;
use crate::domain::{Actor, ActorRole, PetitionId, RefuseReason};
use crate::lifecycle::expire_rating;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const RECEIVED: &str = "2026-11-23T09:00:00+08:00";

fn grid() -> UnitPath {
    "shinan.badaxia.tuandao.g017".parse().unwrap()
}

fn clocks() -> Clocks {
    let r = at(RECEIVED);
    let p = default_policy();
    Clocks { respond: Some(Window::new(r, p.respond_by(r))), resolve: Some(Window::new(r, p.resolve_by(r, 2))), rating_by: None }
}

fn state(status: Status, unit: &UnitPath) -> State<'_> {
    let c = clocks();
    State {
        status,
        unit,
        citizen_id: "openid-1",
        channel: crate::domain::Channel::Wechat,
        clocks: c,
        deadlines: Deadlines { respond_by: c.respond.unwrap().due, resolve_by: c.resolve.unwrap().due },
        working_days: 2,
        unsatisfied: 0,
        breached_here: false,
    }
}

fn cmd(role: ActorRole, unit: Option<&str>, action: Action) -> Command {
    Command {
        id: "c1".into(),
        petition_id: "20261123-000001".parse::<PetitionId>().unwrap(),
        actor: Actor {
            id: if role == ActorRole::Citizen { "openid-1".into() } else { "staff-1".into() },
            role,
            unit: unit.map(|u| u.parse().unwrap()),
        },
        at: at(RECEIVED),
        action,
    }
}

fn handler(unit: &str, action: Action) -> Command {
    cmd(ActorRole::Handler, Some(unit), action)
}

/// Applies `c` as sent by a principal matching its actor (what the
/// lifecycle role looks up by `user_id`); authorization has its own tests.
fn apply(s: &State, c: &Command, env: &Env) -> Result<Transition, Refusal> {
    use crate::identity::{Kind, Principal};
    let kind = match c.actor.role {
        ActorRole::Handler => Kind::Handler,
        ActorRole::Dispatcher => Kind::Dispatcher,
        ActorRole::Reviewer => Kind::Reviewer,
        ActorRole::Citizen => Kind::Adapter,
    };
    if kind != crate::lifecycle::kind_for(&c.action) {
        return Err(Refusal::Forbidden);
    }
    let unit = match kind {
        Kind::Dispatcher => Some(c.actor.unit.clone().unwrap_or_else(|| "shinan".parse().unwrap())),
        _ => c.actor.unit.clone(),
    };
    let sender = Principal {
        user: "sender".parse().unwrap(),
        kind,
        unit,
        channel: Some(crate::domain::Channel::Wechat),
        api_key_sha256: None,
        password_hash: None,
    };
    super::apply(s, c, &sender, env)
}

fn with_env<T>(now: &str, f: impl FnOnce(&Env) -> T) -> T {
    let policy = default_policy();
    let exists = |u: &UnitPath| u.as_str().starts_with("shinan") && !u.as_str().ends_with("nowhere");
    let env = Env { now: at(now), policy: &policy, rating_period: Duration::days(3), unit_exists: &exists };
    f(&env)
}

#[test]
fn accept_stops_the_response_clock_and_records_punctuality() {
    let g = grid();
    let t = with_env("2026-11-23T10:00:00+08:00", |env| {
        apply(&state(Status::Assigned, &g), &handler("shinan.badaxia.tuandao.g017", Action::Accept), env)
    })
    .unwrap();
    assert_eq!((t.status, t.event), (Status::Accepted, EventType::Accepted));
    assert_eq!(t.clocks.respond, None);
    assert_eq!(t.clocks.resolve, clocks().resolve);
    assert_eq!(t.responded_on_time, Some(true));
    let late =
        with_env("2026-11-23T13:30:00+08:00", |env| apply(&state(Status::Assigned, &g), &handler("shinan.badaxia", Action::Accept), env))
            .unwrap();
    assert_eq!(late.responded_on_time, Some(false), "a supervising street may accept too");
}

#[test]
fn resolve_then_return_resumes_the_original_deadline() {
    let g = grid();
    let mut s = state(Status::Accepted, &g);
    s.clocks.respond = None;
    let resolved = with_env("2026-11-24T10:00:00+08:00", |env| {
        apply(&s, &handler("shinan.badaxia.tuandao.g017", Action::Resolve { result: "已修复".into() }), env)
    })
    .unwrap();
    assert_eq!((resolved.status, resolved.clocks.resolve, resolved.resolved_on_time), (Status::Resolved, None, Some(true)));

    let s = State { status: Status::Resolved, clocks: resolved.clocks, ..s };
    let returned = with_env("2026-11-24T11:00:00+08:00", |env| {
        apply(&s, &cmd(ActorRole::Reviewer, Some("shinan"), Action::Return { reason: "照片不清".into() }), env)
    })
    .unwrap();
    assert_eq!(returned.status, Status::Accepted);
    assert_eq!(returned.clocks.resolve.unwrap().due, s.deadlines.resolve_by);
    assert_eq!(returned.deadlines, s.deadlines);
}

#[test]
fn approval_starts_the_rating_clock_and_a_good_rating_closes() {
    let g = grid();
    let s = State { clocks: Clocks::default(), ..state(Status::Resolved, &g) };
    let approved = with_env("2026-11-24T12:00:00+08:00", |env| apply(&s, &cmd(ActorRole::Reviewer, None, Action::Approve), env)).unwrap();
    assert_eq!(approved.status, Status::Approved);
    assert_eq!(approved.clocks.rating_by, Some(at("2026-11-27T12:00:00+08:00")));

    let s = State { status: Status::Approved, clocks: approved.clocks, ..s };
    let rate = cmd(ActorRole::Citizen, None, Action::Rate { rating: Rating::BasicallySatisfied, comment: None });
    let closed = with_env("2026-11-25T08:00:00+08:00", |env| apply(&s, &rate, env)).unwrap();
    assert_eq!((closed.status, closed.closure, closed.rating), (Status::Closed, Some(Closure::Rated), Some(Rating::BasicallySatisfied)));
    assert_eq!((closed.event, closed.then), (EventType::Rated, Some(EventType::Closed)));
    assert_eq!(closed.clocks, Clocks::default());

    let expired = expire_rating(&s);
    assert_eq!((expired.status, expired.closure), (Status::Closed, Some(Closure::NoRating)));
}

#[test]
fn unsatisfied_reopens_one_level_up_then_closes_the_second_time() {
    let g = grid();
    let s = state(Status::Approved, &g);
    let rate = cmd(ActorRole::Citizen, None, Action::Rate { rating: Rating::Unsatisfied, comment: Some("没修好".into()) });
    let reopened = with_env("2026-11-25T08:00:00+08:00", |env| apply(&s, &rate, env)).unwrap();
    assert_eq!((reopened.status, reopened.event, reopened.then), (Status::Reopened, EventType::Rated, Some(EventType::Reopened)));
    let h = reopened.handover.clone().unwrap();
    assert_eq!(
        (h.to.as_str(), h.reason, h.level_up, h.dispatch),
        ("shinan.badaxia.tuandao", Some(EscalationReason::Unsatisfied), true, true)
    );
    assert_eq!(reopened.deadlines.respond_by, at("2026-11-25T12:00:00+08:00"));
    assert_eq!(reopened.deadlines.resolve_by, at("2026-11-27T17:30:00+08:00"), "a fresh 2-working-day window");

    let community = h.to;
    let s = State { unsatisfied: 1, ..state(Status::Approved, &community) };
    let closed = with_env("2026-11-28T08:00:00+08:00", |env| apply(&s, &rate, env)).unwrap();
    assert_eq!((closed.status, closed.closure, closed.rating), (Status::Closed, Some(Closure::Rated), Some(Rating::Unsatisfied)));
    assert!(closed.handover.is_none());
}

#[test]
fn refuse_returns_to_the_district_platform_and_transfer_redispatches() {
    let g = grid();
    let refuse = handler("shinan.badaxia.tuandao", Action::Refuse { reason: RefuseReason::WrongFunction, note: None });
    let t = with_env("2026-11-23T10:00:00+08:00", |env| apply(&state(Status::Assigned, &g), &refuse, env)).unwrap();
    assert_eq!((t.status, t.event), (Status::Triage, EventType::Refused));
    let h = t.handover.unwrap();
    assert_eq!((h.to.as_str(), h.reason, h.dispatch, h.level_up), ("shinan", Some(EscalationReason::Refused), false, false));
    assert_eq!(t.deadlines.respond_by, at("2026-11-23T14:00:00+08:00"), "the platform's clock starts at the refusal");

    let district: UnitPath = "shinan".parse().unwrap();
    let transfer = cmd(ActorRole::Dispatcher, Some("shinan"), Action::Transfer { unit: "shinan.xianggangzhonglu".parse().unwrap() });
    let t = with_env("2026-11-23T11:00:00+08:00", |env| apply(&state(Status::Triage, &district), &transfer, env)).unwrap();
    assert_eq!((t.status, t.event), (Status::Assigned, EventType::Transferred));
    assert_eq!(t.handover.unwrap().to.as_str(), "shinan.xianggangzhonglu");
    assert_eq!(t.deadlines.respond_by, at("2026-11-23T15:00:00+08:00"));

    let nowhere = cmd(ActorRole::Dispatcher, None, Action::Transfer { unit: "shinan.nowhere".parse().unwrap() });
    let err = with_env("2026-11-23T11:00:00+08:00", |env| apply(&state(Status::Triage, &district), &nowhere, env)).unwrap_err();
    assert_eq!(err, Refusal::UnknownUnit);
}

#[test]
fn escalate_climbs_one_level_keeping_the_resolution_deadline() {
    let g = grid();
    let t = with_env("2026-11-23T10:00:00+08:00", |env| {
        apply(&state(Status::Accepted, &g), &handler("shinan.badaxia.tuandao.g017", Action::Escalate { note: None }), env)
    })
    .unwrap();
    let h = t.handover.unwrap();
    assert_eq!((h.to.as_str(), h.reason, h.level_up), ("shinan.badaxia.tuandao", Some(EscalationReason::HandlerRequest), true));
    assert_eq!(t.status, Status::Assigned);
    assert_eq!(t.deadlines.resolve_by, state(Status::Accepted, &g).deadlines.resolve_by);
    assert_eq!(t.deadlines.respond_by, at("2026-11-23T14:00:00+08:00"));

    let district: UnitPath = "shinan".parse().unwrap();
    let err = with_env("2026-11-23T10:00:00+08:00", |env| {
        apply(&state(Status::Accepted, &district), &handler("shinan", Action::Escalate { note: None }), env)
    })
    .unwrap_err();
    assert_eq!(err, Refusal::AtTop);
}

#[test]
fn wrong_actors_and_illegal_steps_are_refused() {
    let g = grid();
    let cases = [
        (state(Status::Assigned, &g), handler("shinan.badaxia.tuandao.g018", Action::Accept), Refusal::WrongUnit),
        (state(Status::Assigned, &g), handler("shinan.zhongshanlu", Action::Accept), Refusal::WrongUnit),
        (state(Status::Assigned, &g), cmd(ActorRole::Handler, None, Action::Accept), Refusal::WrongUnit),
        (state(Status::Assigned, &g), cmd(ActorRole::Citizen, None, Action::Accept), Refusal::Forbidden),
        (state(Status::Resolved, &g), handler("shinan", Action::Approve), Refusal::Forbidden),
        (
            state(Status::Assigned, &g),
            cmd(ActorRole::Reviewer, None, Action::Transfer { unit: "shinan".parse().unwrap() }),
            Refusal::Forbidden,
        ),
        (state(Status::Assigned, &g), handler("shinan.badaxia", Action::Resolve { result: "x".into() }), Refusal::IllegalTransition),
        (state(Status::Accepted, &g), handler("shinan.badaxia", Action::Accept), Refusal::IllegalTransition),
        (state(Status::Closed, &g), handler("shinan.badaxia", Action::Progress { note: "x".into() }), Refusal::IllegalTransition),
        (state(Status::Accepted, &g), cmd(ActorRole::Reviewer, None, Action::Approve), Refusal::IllegalTransition),
        (
            state(Status::Resolved, &g),
            cmd(ActorRole::Citizen, None, Action::Rate { rating: Rating::Satisfied, comment: None }),
            Refusal::IllegalTransition,
        ),
    ];
    for (s, c, expected) in cases {
        let got = with_env("2026-11-23T10:00:00+08:00", |env| apply(&s, &c, env));
        assert_eq!(got.unwrap_err(), expected, "{:?} by {:?} in {:?}", c.action, c.actor, s.status);
    }
    let mut stranger = cmd(ActorRole::Citizen, None, Action::Rate { rating: Rating::Satisfied, comment: None });
    stranger.actor.id = "openid-2".into();
    let got = with_env("2026-11-23T10:00:00+08:00", |env| apply(&state(Status::Approved, &g), &stranger, env));
    assert_eq!(got.unwrap_err(), Refusal::NotCitizen);
}
