//! The outbox against real components: a refused SMTP connection is retried later with the
//! message intact, delivery through the SMTP test server wipes the stored body, and a
//! message that can never be delivered fails for good, and finished mail is pruned after a
//! week. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use secrecy::SecretString;
use serde_json::json;
use tenantry_core::crypto::MasterKey;
use tenantry_db::{
    Db, DbError, FromRow, Row,
    migrate::{Migration, Migrator},
};
use tenantry_notify::{MailConfig, Mailer, OutboxStats};

/// Base of the links in test messages.
const PUBLIC_URL: &str = "http://127.0.0.1:4999";

struct Stored {
    attempts: i64,
    last_error: Option<String>,
    has_payload: bool,
}

impl FromRow for Stored {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            attempts: row.i64()?,
            last_error: row.opt_string()?,
            has_payload: row.opt_bytes()?.is_some(),
        })
    }
}

async fn stored(db: &Db) -> Stored {
    db.read_optional(
        sea_query::Query::select()
            .columns(["attempts", "last_error", "payload"])
            .from("mail_outbox"),
    )
    .await
    .unwrap()
    .unwrap()
}

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("smtp://127.0.0.1:{port}")
}

fn mailer(db: &Db, dir: &std::path::Path, smtp_url: String, key: &MasterKey) -> Mailer {
    let config = MailConfig {
        send_timeout_secs: 5,
        ..MailConfig::default()
    };
    let smtp_url = SecretString::from(smtp_url);
    Mailer::new(
        db.clone(),
        &config,
        Some(&smtp_url),
        dir,
        PUBLIC_URL,
        key.clone(),
    )
    .unwrap()
}

async fn retried_then_delivered_then_wiped(db: Db, test: &str) {
    let migrations: Vec<Migration> = [
        tenantry_db::migrations::MIGRATIONS,
        tenantry_notify::migrations::MIGRATIONS,
    ]
    .concat();
    Migrator::new(migrations).unwrap().up(&db).await.unwrap();
    let Some(sink) = tenantry_testkit::smtp_sink(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = MasterKey::generate();
    let to = format!("outbox-{}@example.test", uuid::Uuid::now_v7().simple());
    let context = json!({"first_name": "Ada", "link": "https://x.test/r?token=abc",
        "expires_in_minutes": 60});

    let down = mailer(&db, dir.path(), closed_port_url(), &key);
    let mut tx = db.begin_write().await.unwrap();
    down.enqueue(&mut tx, &to, "password_reset", &context)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(down.deliver_due().await.unwrap(), 1);
    let after_failure = stored(&db).await;
    assert_eq!(after_failure.attempts, 1);
    assert!(after_failure.last_error.is_some());
    assert!(after_failure.has_payload, "kept for the retry");
    assert_eq!(
        down.stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            sent: 0,
            failed: 0
        }
    );
    // Backing off: nothing is due right away.
    assert_eq!(down.deliver_due().await.unwrap(), 0);

    // The retry time arrives, and the server is reachable now.
    db.execute_script("UPDATE mail_outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z'")
        .await
        .unwrap();
    let up = mailer(&db, dir.path(), sink.url.clone(), &key);
    assert_eq!(up.deliver_due().await.unwrap(), 1);
    let delivered = sink.wait_for(&to, 1).await;
    assert_eq!(delivered[0].subject, "Reset your Tenantry password");
    assert!(delivered[0].text.contains("https://x.test/r?token=abc"));
    let after_success = stored(&db).await;
    assert!(
        !after_success.has_payload,
        "the body (with its link) is gone once sent"
    );
    assert_eq!(after_success.attempts, 2);
    assert_eq!(
        up.stats().await.unwrap(),
        OutboxStats {
            pending: 0,
            sent: 1,
            failed: 0
        }
    );

    // A recipient no server accepts fails for good at the first attempt.
    let mut tx = db.begin_write().await.unwrap();
    up.enqueue(&mut tx, "not an address", "password_reset", &context)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(up.deliver_due().await.unwrap(), 1);
    assert_eq!(
        up.stats().await.unwrap(),
        OutboxStats {
            pending: 0,
            sent: 1,
            failed: 1
        }
    );

    // A message sealed under another key cannot be opened: failed, not retried forever.
    let (other_key, _) = MasterKey::generate();
    let foreign = mailer(&db, dir.path(), sink.url.clone(), &other_key);
    let mut tx = db.begin_write().await.unwrap();
    foreign
        .enqueue(&mut tx, &to, "password_reset", &context)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(up.deliver_due().await.unwrap(), 1);
    assert_eq!(up.stats().await.unwrap().failed, 2);

    // Finished mail is kept for a week, then pruned; a pending message never is.
    let mut tx = db.begin_write().await.unwrap();
    up.enqueue(&mut tx, &to, "password_reset", &context)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(up.prune_sent().await.unwrap(), 0, "all recent");
    db.execute_script("UPDATE mail_outbox SET created_at = '2000-01-01T00:00:00.000000Z'")
        .await
        .unwrap();
    assert_eq!(up.prune_sent().await.unwrap(), 3);
    assert_eq!(
        up.stats().await.unwrap(),
        OutboxStats {
            pending: 1,
            sent: 0,
            failed: 0
        }
    );
}

#[tokio::test]
async fn sqlite_outbox_retries_delivers_and_wipes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = Db::connect(&url, &Default::default()).await.unwrap();
    retried_then_delivered_then_wiped(db, "sqlite_outbox_retries_delivers_and_wipes").await;
}

#[tokio::test]
async fn postgres_outbox_retries_delivers_and_wipes() {
    let test = "postgres_outbox_retries_delivers_and_wipes";
    let Some(url) = tenantry_testkit::fresh_postgres_database(test).await else {
        return;
    };
    let db = Db::connect(&url, &Default::default()).await.unwrap();
    retried_then_delivered_then_wiped(db, test).await;
}

/// Delivery over STARTTLS and implicit TLS, with the server's certificate trusted through
/// `mail.tls_ca_file`; without it the certificate is refused and nothing is delivered.
async fn delivers_over_tls(mode: tenantry_testkit::SmtpTls, test: &str) {
    let Some(tls) = tenantry_testkit::smtp_sink_tls(test, mode) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = Db::connect(&url, &Default::default()).await.unwrap();
    let migrations: Vec<Migration> = [
        tenantry_db::migrations::MIGRATIONS,
        tenantry_notify::migrations::MIGRATIONS,
    ]
    .concat();
    Migrator::new(migrations).unwrap().up(&db).await.unwrap();
    let (key, _) = MasterKey::generate();
    let to = format!("tls-{}@example.test", uuid::Uuid::now_v7().simple());
    let context = json!({"first_name": "Ada", "link": "https://x.test/v?token=t",
        "email": to, "expires_in_hours": 24});

    // Not trusting the self-signed certificate: the attempt fails and is kept for a retry.
    let untrusting = mailer(&db, dir.path(), tls.sink.url.clone(), &key);
    let mut tx = db.begin_write().await.unwrap();
    untrusting
        .enqueue(&mut tx, &to, "verify_email", &context)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(untrusting.deliver_due().await.unwrap(), 1);
    assert!(stored(&db).await.last_error.is_some());
    assert!(tls.sink.messages(&to).is_empty());

    db.execute_script("UPDATE mail_outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z'")
        .await
        .unwrap();
    let config = MailConfig {
        tls_ca_file: Some(tls.ca_file.clone()),
        ..MailConfig::default()
    };
    let smtp_url = SecretString::from(tls.sink.url.clone());
    let trusting = Mailer::new(
        db.clone(),
        &config,
        Some(&smtp_url),
        dir.path(),
        PUBLIC_URL,
        key.clone(),
    )
    .unwrap();
    assert_eq!(trusting.deliver_due().await.unwrap(), 1);
    let delivered = tls.sink.wait_for(&to, 1).await;
    assert!(delivered[0].tls, "delivered over TLS");
    assert_eq!(delivered[0].auth_user.as_deref(), Some("tenantry"));
    assert_eq!(trusting.stats().await.unwrap().sent, 1);
}

#[tokio::test]
async fn delivers_over_starttls() {
    delivers_over_tls(
        tenantry_testkit::SmtpTls::StartTls,
        "delivers_over_starttls",
    )
    .await;
}

#[tokio::test]
async fn delivers_over_implicit_tls() {
    delivers_over_tls(
        tenantry_testkit::SmtpTls::Implicit,
        "delivers_over_implicit_tls",
    )
    .await;
}
