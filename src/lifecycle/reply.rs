//! Where a command's answer may go. A reply is a message the pipeline sends
//! on the sender's behalf, so it goes only where the sender itself may read:
//! RabbitMQ's direct reply-to, or the sender's own reply queues
//! `{ns}.reply.<user_id>.…`, `user_id` being the login RabbitMQ vouched for.
//! Any other `reply_to` gets no reply (the command is still applied).

/// RabbitMQ's direct reply-to pseudo-queue (and the names it hands out).
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

pub fn reply_allowed(reply_to: &str, user_id: Option<&str>, namespace: &str) -> bool {
    if reply_to.starts_with(DIRECT_REPLY_TO) {
        return true;
    }
    match user_id {
        Some(user) if !user.is_empty() => reply_to.strip_prefix(&format!("{namespace}.reply.{user}.")).is_some_and(|rest| !rest.is_empty()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::reply_allowed;

    #[test]
    fn replies_go_to_direct_reply_to_or_the_sender_s_own_queues() {
        assert!(reply_allowed("amq.rabbitmq.reply-to", None, "ns"));
        assert!(reply_allowed("amq.rabbitmq.reply-to.g1h2AA==.abc", None, "ns"));
        assert!(reply_allowed("ns.reply.tuandao-app.1", Some("tuandao-app"), "ns"));
        assert!(!reply_allowed("ns.reply.tuandao-app.1", Some("other-app"), "ns"), "another user's queue");
        assert!(!reply_allowed("ns.reply.tuandao-app.1", None, "ns"), "no authenticated sender");
        assert!(!reply_allowed("ns.reply.tuandao-app.", Some("tuandao-app"), "ns"));
        assert!(!reply_allowed("ns.dispatch", Some("tuandao-app"), "ns"), "a pipeline exchange or queue");
        assert!(!reply_allowed("amq.gen-xyz", Some("tuandao-app"), "ns"));
        assert!(!reply_allowed("other.reply.tuandao-app.1", Some("tuandao-app"), "ns"), "another namespace");
    }
}
