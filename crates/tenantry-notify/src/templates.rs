//! Message templates: subject, plain text and HTML per message kind, rendered with minijinja
//! (HTML auto-escaped). Built-in templates are compiled in; an operator may replace any file
//! by putting one of the same name in `mail.templates_dir`.

use std::path::Path;

use anyhow::{Context, anyhow};
use minijinja::Environment;
use serde::Serialize;

/// Every built-in template file, by name.
const BUILT_IN: &[(&str, &str)] = &[
    ("_layout.html", include_str!("../templates/_layout.html")),
    (
        "verify_email.subject",
        include_str!("../templates/verify_email.subject"),
    ),
    (
        "verify_email.txt",
        include_str!("../templates/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../templates/verify_email.html"),
    ),
    (
        "password_reset.subject",
        include_str!("../templates/password_reset.subject"),
    ),
    (
        "password_reset.txt",
        include_str!("../templates/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../templates/password_reset.html"),
    ),
    (
        "password_changed.subject",
        include_str!("../templates/password_changed.subject"),
    ),
    (
        "password_changed.txt",
        include_str!("../templates/password_changed.txt"),
    ),
    (
        "password_changed.html",
        include_str!("../templates/password_changed.html"),
    ),
    (
        "mfa_changed.subject",
        include_str!("../templates/mfa_changed.subject"),
    ),
    (
        "mfa_changed.txt",
        include_str!("../templates/mfa_changed.txt"),
    ),
    (
        "mfa_changed.html",
        include_str!("../templates/mfa_changed.html"),
    ),
    (
        "invitation.subject",
        include_str!("../templates/invitation.subject"),
    ),
    (
        "invitation.txt",
        include_str!("../templates/invitation.txt"),
    ),
    (
        "invitation.html",
        include_str!("../templates/invitation.html"),
    ),
];

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The loaded template set.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    globals: serde_json::Value,
}

impl Templates {
    /// Built-ins, overridden by same-named files in `dir`. Every template is parsed here, so
    /// a broken override fails the start rather than a message later.
    pub fn load(dir: Option<&Path>, product: &str, public_url: &str) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in BUILT_IN {
            let source = match dir {
                Some(dir) => match std::fs::read_to_string(dir.join(name)) {
                    Ok(custom) => {
                        tracing::info!(template = name, "using a custom mail template");
                        custom
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (*source).to_owned(),
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("reading {}", dir.join(name).display()));
                    }
                },
                None => (*source).to_owned(),
            };
            env.add_template_owned(*name, source)
                .with_context(|| format!("mail template {name}"))?;
        }
        Ok(Self {
            env,
            globals: serde_json::json!({ "product": product, "public_url": public_url }),
        })
    }

    /// Renders the three parts of `template` with `context` (plus `product` and `public_url`).
    pub fn render(&self, template: &str, context: &serde_json::Value) -> anyhow::Result<Rendered> {
        let mut merged = self.globals.clone();
        if let (Some(into), Some(from)) = (merged.as_object_mut(), context.as_object()) {
            into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let part = |suffix: &str| -> anyhow::Result<String> {
            let name = format!("{template}.{suffix}");
            self.env
                .get_template(&name)
                .map_err(|_| anyhow!("no mail template {name}"))?
                .render(&merged)
                .with_context(|| format!("rendering mail template {name}"))
        };
        let subject = part("subject")?;
        // One line: a template must not be able to inject headers.
        let subject = subject.lines().map(str::trim).find(|l| !l.is_empty());
        Ok(Rendered {
            subject: subject.unwrap_or_default().to_owned(),
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reset_context() -> serde_json::Value {
        json!({"first_name": "<Ada>", "link": "https://x.test/r?t=1&u=2", "expires_in_minutes": 60})
    }

    #[test]
    fn built_ins_render_and_escape_html_only() {
        let t = Templates::load(None, "Tenantry", "https://x.test").unwrap();
        let r = t.render("password_reset", &reset_context()).unwrap();
        assert_eq!(r.subject, "Reset your Tenantry password");
        assert!(r.text.contains("Hello <Ada>,"), "{}", r.text);
        assert!(r.text.contains("https://x.test/r?t=1&u=2"));
        assert!(r.html.contains("Hello &lt;Ada&gt;,"), "{}", r.html);
        assert!(
            r.html
                .contains("https:&#x2f;&#x2f;x.test&#x2f;r?t=1&amp;u=2"),
            "{}",
            r.html
        );
        assert!(
            r.html
                .contains("sent by Tenantry (https:&#x2f;&#x2f;x.test)")
        );
        for name in [
            "verify_email",
            "password_changed",
            "mfa_changed",
            "invitation",
        ] {
            let ctx = json!({"first_name": "A", "email": "a@x.test", "link": "l",
                "expires_in_hours": 24, "how": "changed", "at": "now", "enabled": true,
                "inviter_name": "B", "inviter_email": "b@x.test", "tenant_name": "C", "role": "member",
                "expires_in_days": 7});
            let r = t.render(name, &ctx).unwrap();
            assert!(!r.subject.is_empty() && !r.text.is_empty() && !r.html.is_empty());
        }
    }

    #[test]
    fn invitations_quote_inviter_tenant_and_role_in_the_body_only() {
        let t = Templates::load(None, "Tenantry", "https://x.test").unwrap();
        let r = t
            .render(
                "invitation",
                &json!({"inviter_name": "Grace Hopper", "tenant_name": "<Acme>", "role": "admin",
                    "inviter_email": "grace@x.test",
                    "email": "a@x.test", "link": "https://x.test/invitations/accept?token=t",
                    "expires_in_days": 7}),
            )
            .unwrap();
        // Names are chosen by the inviter: never in the subject, quoted in the body.
        assert_eq!(r.subject, "Invitation to join a tenant on Tenantry");
        assert!(r.text.contains("Tenant:      \"<Acme>\""), "{}", r.text);
        assert!(
            r.text
                .contains("Invited by:  \"Grace Hopper\" <grace@x.test>"),
            "{}",
            r.text
        );
        assert!(r.text.contains("Role:        \"admin\""), "{}", r.text);
        assert!(r.text.contains("https://x.test/invitations/accept?token=t"));
        assert!(r.text.contains("expires in 7 days"));
        assert!(r.html.contains("&lt;Acme&gt;"), "{}", r.html);
    }

    #[test]
    fn overrides_replace_single_files_and_missing_values_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password_reset.subject"),
            "  \n{{ product }}: new password\nBcc: evil@x.test\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path()), "Acme", "https://acme.test").unwrap();
        let r = t.render("password_reset", &reset_context()).unwrap();
        assert_eq!(r.subject, "Acme: new password", "first line only");
        assert!(
            r.text.contains("Choose a new password here"),
            "text is built-in"
        );
        assert!(
            t.render("password_reset", &json!({})).is_err(),
            "strict undefined"
        );
        assert!(t.render("no_such", &json!({})).is_err());
        std::fs::write(dir.path().join("verify_email.txt"), "{% if %}").unwrap();
        assert!(
            Templates::load(Some(dir.path()), "Acme", "u").is_err(),
            "broken override"
        );
    }
}
