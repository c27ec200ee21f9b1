//! Which subjects a component may use. Subjects of the lattice (`trellis.…`),
//! reply inboxes (`_INBOX.…`) and the server's own (`$…`) are never a
//! component's: it may not send to them, and no subscription may reach into
//! them, wildcards included. Every other subject is shared on purpose: that
//! is how components talk to the rest of the world.

/// Whether a first token names a reserved subject space.
fn reserved(token: &str) -> bool {
    token == "trellis" || token == "_INBOX" || token.starts_with('$')
}

fn malformed(subject: &str) -> bool {
    subject.is_empty()
        || subject.contains([' ', '\t', '\r', '\n'])
        || subject.split('.').any(str::is_empty)
}

/// Why a component may not send to `subject`, if it may not.
pub fn refuse_send(subject: &str) -> Option<String> {
    if malformed(subject) || subject.contains(['*', '>']) {
        return Some(format!(
            "`{subject}` is not a subject to send to: use dot-separated tokens without wildcards or spaces"
        ));
    }
    let first = subject.split('.').next().unwrap_or_default();
    reserved(first).then(|| {
        format!("subject `{subject}` is reserved (`{first}…` belongs to the lattice or the server)")
    })
}

/// Why a component may not subscribe to `subject`, if it may not. The first
/// token must be a literal outside the reserved spaces, since `>` or `*` there
/// would match them; wildcards further on are whole tokens, `>` only last.
pub fn refuse_subscription(subject: &str) -> Option<String> {
    if malformed(subject) {
        return Some("not a subject: use dot-separated tokens without spaces".into());
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        let wildcard = token.contains(['*', '>']);
        if wildcard && *token != "*" && *token != ">" {
            return Some(format!("`{token}`: a wildcard is a whole token"));
        }
        if *token == ">" && i != last {
            return Some("`>` may only be the last token".into());
        }
        if i == 0 && wildcard {
            return Some(format!(
                "`{subject}` would match the lattice's and the server's subjects: start with a literal token"
            ));
        }
    }
    reserved(tokens[0]).then(|| format!("`{}…` belongs to the lattice or the server", tokens[0]))
}

/// Whether a delivered message's reply subject may be answered: a handler's
/// answer never goes onto the lattice's or the server's subjects (replies to
/// a request's `_INBOX` are what replies are for).
pub fn may_answer(reply: &str) -> bool {
    let first = reply.split('.').next().unwrap_or_default();
    !malformed(reply)
        && !reply.contains(['*', '>'])
        && first != "trellis"
        && !first.starts_with('$')
}

/// The application subjects the lattice grants this provider's identity
/// (`--subject`, the same patterns `trellis lattice add provider --subject`
/// wrote into the server's permissions). A subject outside them is refused
/// here with a sentence, instead of vanishing into a permission violation
/// that leaves a request waiting out its timeout. Empty: every subject
/// outside the reserved spaces (an open server).
#[derive(Debug, Clone, Default)]
pub struct Granted(Vec<String>);

impl Granted {
    /// The grants `patterns`.
    pub fn new(patterns: Vec<String>) -> Self {
        Granted(patterns)
    }

    /// Why `subject` (a subject, or a subscription's pattern) is outside the
    /// grants, if it is.
    pub fn refuse(&self, subject: &str) -> Option<String> {
        if self.0.is_empty() || self.0.iter().any(|grant| covers(grant, subject)) {
            return None;
        }
        Some(format!(
            "subject `{subject}` is outside this provider's application subjects ({})",
            self.0.join(", ")
        ))
    }
}

/// Whether every subject `pattern` matches is matched by `grant`.
fn covers(grant: &str, pattern: &str) -> bool {
    let (mut grant, mut pattern) = (grant.split('.'), pattern.split('.'));
    loop {
        match (grant.next(), pattern.next()) {
            (Some(">"), Some(_)) | (None, None) => return true,
            (Some("*"), Some(token)) if token != ">" => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_cover_exactly_their_subjects() {
        let granted = Granted::new(vec!["orders.>".into(), "svc.*".into()]);
        for ok in [
            "orders.new",
            "orders.a.b",
            "orders.*",
            "orders.>",
            "svc.upper",
            "svc.*",
        ] {
            assert_eq!(granted.refuse(ok), None, "{ok}");
        }
        for bad in [
            "orders",
            "svc",
            "svc.a.b",
            "svc.>",
            "billing.x",
            "ordersx.y",
        ] {
            assert!(granted.refuse(bad).is_some(), "{bad}");
        }
        assert_eq!(Granted::default().refuse("anything"), None);
    }

    #[test]
    fn sends_to_reserved_or_malformed_subjects_are_refused() {
        for ok in ["orders.new", "a", "svc.upper.v1", "trellisx.y"] {
            assert_eq!(refuse_send(ok), None, "{ok}");
        }
        for bad in [
            "trellis.default.provider.kv.info",
            "trellis",
            "_INBOX.x",
            "$JS.API.INFO",
            "",
            "a..b",
            "orders.*",
            "orders.>",
            "has space",
        ] {
            assert!(refuse_send(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn subscriptions_cannot_reach_reserved_subjects() {
        for ok in ["orders.*", "billing.>", "a.*.c", "orders"] {
            assert_eq!(refuse_subscription(ok), None, "{ok}");
        }
        for bad in [
            ">",
            "*.>",
            "*",
            "*.orders",
            "trellis.>",
            "trellis",
            "_INBOX.>",
            "$JS.API.>",
            "$SYS",
            "a.>.b",
            "a.b*",
            "a..b",
            "",
        ] {
            assert!(refuse_subscription(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn answers_never_go_onto_lattice_subjects() {
        assert!(may_answer("_INBOX.abc.def"));
        assert!(may_answer("orders.reply"));
        for bad in [
            "trellis.default.host.h1.start",
            "$JS.API.STREAM.DELETE.x",
            "a.>",
            "",
        ] {
            assert!(!may_answer(bad), "{bad}");
        }
    }
}
