//! What each kind of principal may do on the broker (`docs/contract.md` §13,
//! README "Least privilege"): RabbitMQ tags, the configure / write / read
//! patterns of its vhost permission, and the topic permissions that limit
//! which routing keys it may publish and bind. One pure function, so the
//! table in the README and what `principals apply` sets are the same thing.
//!
//! RabbitMQ matches the three vhost patterns against exchange and queue
//! names alike; publishing needs `write` on the exchange, consuming `read`
//! on the queue, binding `write` on the queue and `read` on the exchange,
//! declaring `configure`. Topic permissions match the routing key of a
//! publish (`write`) and the binding key of a bind (`read`).

use super::{Kind, Principal};

/// A principal's grants on one vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub tags: Vec<&'static str>,
    pub configure: String,
    pub write: String,
    pub read: String,
    pub topics: Vec<TopicGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicGrant {
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// Matches nothing: no routing key is empty.
const NOTHING: &str = "^$";

/// The queues a principal's own programs declare: its reply queues
/// `{ns}.reply.<user>.…` and its subscriptions `{ns}.client.<user>.…`
/// (bound to dispatch, escalations or outbound within its topic grants).
pub fn own_queues(namespace: &str, user: &str) -> String {
    format!("{ns}\\.(reply|client)\\.{user}\\..+", ns = escape(namespace))
}

pub fn grant(p: &Principal, namespace: &str) -> Grant {
    let ns = escape(namespace);
    // A resource of the namespace; `name` is a regex itself (`dispatch`, or `outbound\\.wechat` for a queue).
    let resource = |name: &str| format!("{ns}\\.{name}");
    let anchored = |alternatives: &[String]| format!("^({})$", alternatives.join("|"));
    let own = own_queues(namespace, p.user.as_str());
    let subtree = |prefix: &str| {
        let unit = p.unit.as_ref().map_or_else(|| "[a-z0-9.]+".to_owned(), |u| escape(u.as_str()));
        format!("^{prefix}{unit}(\\..+)?$")
    };
    let topic =
        |name: &str, write: &str, read: String| TopicGrant { exchange: format!("{namespace}.{name}"), write: write.to_owned(), read };
    let commands = |keys: &str| topic("commands", &format!("^petition\\.({keys})$"), NOTHING.to_owned());
    let client = |write: &[&str], read: &[&str], topics: Vec<TopicGrant>| Grant {
        tags: vec![],
        configure: anchored(std::slice::from_ref(&own)),
        write: anchored(&std::iter::once(own.clone()).chain(write.iter().map(|e| resource(e))).collect::<Vec<_>>()),
        read: anchored(&std::iter::once(own.clone()).chain(read.iter().map(|e| resource(e))).collect::<Vec<_>>()),
        topics,
    };
    // A supervisor's or dispatcher's escalations: `<level>.<unit>…`,
    // `warning.<unit>…` and `hotspot.<unit>…`, bound with a concrete word or `*` first.
    let escalations = || topic("escalations", NOTHING, subtree("[a-z*]+\\."));
    match p.kind {
        Kind::Pipeline => Grant {
            // The gateway and the console are pipeline roles that act for
            // people who authenticated over HTTP: they set `user_id` to them.
            tags: vec!["impersonator"],
            configure: format!("^{ns}\\..+$"),
            // `amq.default`: replies to direct reply-to and to reply queues.
            write: format!("^({ns}\\..+|amq\\.default)$"),
            read: format!("^{ns}\\..+$"),
            topics: vec![],
        },
        Kind::Handler => client(
            &["commands"],
            &["dispatch"],
            vec![commands("accept|progress|resolve|refuse|escalate"), topic("dispatch", NOTHING, subtree("unit\\."))],
        ),
        Kind::Dispatcher => client(
            &["commands"],
            &["dispatch", "escalations"],
            vec![commands("transfer"), topic("dispatch", NOTHING, subtree("unit\\.")), escalations()],
        ),
        Kind::Reviewer => client(&["commands"], &["escalations"], vec![commands("approve|return")]),
        Kind::Supervisor => client(&[], &["escalations"], vec![escalations()]),
        Kind::Adapter => {
            let channel = p.channel.map_or(NOTHING.to_owned(), |c| format!("^{}$", c.as_str()));
            // Its channel's durable outbound queue `{ns}.outbound.<channel>`
            // (declared by the pipeline, so nothing waits on the adapter to bind).
            let queue = p.channel.map_or_else(|| "outbound".to_owned(), |c| format!("outbound\\.{}", c.as_str()));
            client(
                &["intake", "commands"],
                &["outbound", &queue],
                vec![topic("intake", &channel, NOTHING.to_owned()), commands("rate"), topic("outbound", NOTHING, channel.clone())],
            )
        }
    }
}

/// Escapes the regex metacharacters of a name (namespaces may contain `-`,
/// `_` or `.`; only `.` is special among the characters allowed there, but
/// any is escaped).
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 2);
    for c in name.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Principals;
    use regex::Regex;

    fn principal(toml: &str) -> Principal {
        Principals::parse(&format!("[[principal]]\n{toml}")).unwrap().principals.iter().next().unwrap().clone()
    }

    fn allows(pattern: &str, name: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(name)
    }

    fn topic<'a>(g: &'a Grant, exchange: &str) -> &'a TopicGrant {
        g.topics.iter().find(|t| t.exchange == exchange).unwrap_or_else(|| panic!("no topic grant on {exchange}"))
    }

    #[test]
    fn a_handler_sends_its_five_commands_and_binds_only_its_own_subtree() {
        let g = grant(&principal("user = \"tuandao-app\"\nkind = \"handler\"\nunit = \"shinan.badaxia.tuandao\""), "ns");
        assert!(g.tags.is_empty());
        assert!(allows(&g.configure, "ns.client.tuandao-app.dispatch"));
        assert!(allows(&g.configure, "ns.reply.tuandao-app.1"));
        assert!(!allows(&g.configure, "ns.reply.other-app.1"));
        assert!(!allows(&g.configure, "ns.dispatch"));
        assert!(allows(&g.write, "ns.commands") && !allows(&g.write, "ns.events") && !allows(&g.write, "ns.dispatch"));
        assert!(!allows(&g.write, "amq.default"));
        assert!(allows(&g.read, "ns.dispatch") && !allows(&g.read, "ns.dead") && !allows(&g.read, "ns.events"));
        let commands = topic(&g, "ns.commands");
        for key in ["petition.accept", "petition.progress", "petition.resolve", "petition.refuse", "petition.escalate"] {
            assert!(allows(&commands.write, key), "{key}");
        }
        for key in ["petition.approve", "petition.rate", "petition.transfer", "petition.accept.x", "xpetition.accept"] {
            assert!(!allows(&commands.write, key), "{key}");
        }
        let dispatch = topic(&g, "ns.dispatch");
        for key in ["unit.shinan.badaxia.tuandao", "unit.shinan.badaxia.tuandao.#", "unit.shinan.badaxia.tuandao.g017"] {
            assert!(allows(&dispatch.read, key), "{key}");
        }
        for key in ["unit.shinan.badaxia.#", "unit.#", "#", "unit.shinan.badaxia.tuandaox", "unit.*.*.tuandao", "unit.shinan.zhongshanlu.#"]
        {
            assert!(!allows(&dispatch.read, key), "{key}");
        }
    }

    #[test]
    fn an_adapter_writes_only_its_channel_and_rate() {
        let g = grant(&principal("user = \"hotline\"\nkind = \"adapter\"\nchannel = \"hotline\""), "ns");
        assert!(allows(&g.write, "ns.intake") && allows(&g.write, "ns.commands") && !allows(&g.write, "ns.outbound"));
        let intake = topic(&g, "ns.intake");
        assert!(allows(&intake.write, "hotline") && !allows(&intake.write, "wechat"));
        let commands = topic(&g, "ns.commands");
        assert!(allows(&commands.write, "petition.rate") && !allows(&commands.write, "petition.approve"));
        assert!(allows(&g.read, "ns.outbound.hotline") && !allows(&g.read, "ns.outbound.wechat"), "{}", g.read);
        let outbound = topic(&g, "ns.outbound");
        assert!(allows(&outbound.read, "hotline") && !allows(&outbound.read, "#") && !allows(&outbound.read, "wechat"));
    }

    #[test]
    fn supervisors_read_escalations_of_their_subtree_and_send_nothing() {
        let g = grant(&principal("user = \"badaxia-sup\"\nkind = \"supervisor\"\nunit = \"shinan.badaxia\""), "ns");
        assert!(!allows(&g.write, "ns.commands"));
        let esc = topic(&g, "ns.escalations");
        for key in ["street.shinan.badaxia", "*.shinan.badaxia.#", "warning.shinan.badaxia.tuandao", "hotspot.shinan.badaxia.tuandao"] {
            assert!(allows(&esc.read, key), "{key}");
        }
        for key in ["#", "*.shinan.#", "street.shinan.zhongshanlu", "#.shinan.badaxia", "hotspot.shinan.zhongshanlu"] {
            assert!(!allows(&esc.read, key), "{key}");
        }
    }

    #[test]
    fn reviewers_and_dispatchers_send_only_their_commands() {
        let r = grant(&principal("user = \"rev\"\nkind = \"reviewer\""), "ns");
        let commands = topic(&r, "ns.commands");
        assert!(allows(&commands.write, "petition.approve") && allows(&commands.write, "petition.return"));
        assert!(!allows(&commands.write, "petition.accept"));
        let d = grant(&principal("user = \"dis\"\nkind = \"dispatcher\"\nunit = \"shinan\""), "ns");
        let commands = topic(&d, "ns.commands");
        assert!(allows(&commands.write, "petition.transfer") && !allows(&commands.write, "petition.approve"));
    }

    #[test]
    fn only_the_pipeline_impersonates_and_owns_the_namespace() {
        let g = grant(&principal("user = \"nuannan\"\nkind = \"pipeline\""), "prod-1");
        assert_eq!(g.tags, vec!["impersonator"]);
        assert!(allows(&g.configure, "prod-1.intake") && !allows(&g.configure, "prod-1xintake"));
        assert!(allows(&g.write, "amq.default") && allows(&g.read, "prod-1.dead"));
        assert!(!allows(&g.read, "other.intake"));
    }
}
