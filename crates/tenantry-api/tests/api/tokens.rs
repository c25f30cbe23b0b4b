//! Token attack battery (QUALITY.md, "Security battery"): every forged, tampered, misdirected,
//! stale or orphaned access token answers 401 `invalid_token`. Tokens are forged with the
//! server's real private key, read from the test's own database, so each case isolates one
//! defect; a control case per group proves the forger produces tokens the server accepts.
//! (100 parallel refreshes of one refresh token: `auth::concurrent_refreshes_…`.)

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ed25519_dalek::{Signer, SigningKey, pkcs8::DecodePrivateKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_query::{Expr, ExprTrait, Order, Query};
use serde_json::{Value, json};
use tenantry_db::{DbError, FromRow, Row};

use crate::helpers::{TestApp, TestUser};

crate::backend_tests!(
    unsigned_and_foreign_algorithm_tokens_are_refused,
    key_ids_other_than_ours_are_refused,
    wrong_issuer_audience_and_times_are_refused,
    bit_flips_anywhere_are_refused,
    tokens_not_bound_to_a_live_session_of_their_subject_are_refused,
);

struct SigningKeyRow {
    kid: String,
    private_der: Vec<u8>,
    public_raw: Vec<u8>,
}

impl FromRow for SigningKeyRow {
    fn from_row(row: &mut Row<'_>) -> Result<Self, DbError> {
        Ok(Self {
            kid: row.string()?,
            private_der: row.bytes()?,
            public_raw: row.bytes()?,
        })
    }
}

/// Makes tokens with the server's own signing key.
struct Forger {
    kid: String,
    key: SigningKey,
    private_der: Vec<u8>,
    public_raw: Vec<u8>,
    issuer: String,
    audience: String,
}

fn b64_json(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Forger {
    async fn of(app: &TestApp) -> Self {
        let rows: Vec<SigningKeyRow> = app
            .state
            .db
            .read_all(
                Query::select()
                    .columns(["kid", "private_key", "public_key"])
                    .from("signing_keys")
                    .and_where(Expr::col("retired_at").is_null())
                    .order_by("created_at", Order::Desc),
            )
            .await
            .unwrap();
        let row = rows.into_iter().next().expect("a signing key in service");
        // Stored sealed with the data key (not as PKCS#8 DER, which starts with 0x30).
        assert_ne!(
            row.private_der[0], 0x30,
            "the private key is encrypted at rest"
        );
        let sealer = app.state.config.master_key().unwrap();
        let private_der = sealer
            .open(&row.private_der, &format!("signing_key:{}", row.kid))
            .unwrap();
        Self {
            key: SigningKey::from_pkcs8_der(&private_der).unwrap(),
            kid: row.kid,
            private_der,
            public_raw: row.public_raw,
            issuer: app.state.config.effective_issuer(),
            audience: app.state.config.auth.audience.clone(),
        }
    }

    /// Claims of a valid token for `user`'s current session.
    fn claims(&self, user: &TestUser) -> Value {
        let payload = user.token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["iss"], self.issuer.as_str());
        assert_eq!(claims["aud"], self.audience.as_str());
        claims
    }

    fn header(&self) -> Value {
        json!({"typ": "JWT", "alg": "EdDSA", "kid": self.kid})
    }

    /// Any header, any claims, a genuine Ed25519 signature by the server's key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }

    fn valid(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

fn with_claims(base: &Value, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = base.as_object().unwrap().clone();
    change(&mut claims);
    Value::Object(claims)
}

async fn accepted(app: &TestApp, case: &str, token: &str) {
    let r = app.get("/api/v1/users/me", Some(token)).await;
    assert_eq!(
        r.status.as_u16(),
        200,
        "control `{case}` must be accepted (else the forger is broken): {}",
        r.body
    );
}

async fn refused(app: &TestApp, case: &str, token: &str) {
    let r = app.get("/api/v1/users/me", Some(token)).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "invalid_token"),
        "attack `{case}` must answer 401 invalid_token, got {} {}",
        r.status,
        r.body
    );
}

async fn unsigned_and_foreign_algorithm_tokens_are_refused(app: TestApp) {
    let user = app.register("alg@example.com").await;
    let forger = Forger::of(&app).await;
    let claims = forger.claims(&user);
    accepted(&app, "EdDSA with our key", &forger.valid(&claims)).await;
    let body = b64_json(&claims);
    let genuine_signature = user.token.split('.').nth(2).unwrap().to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64_json(&json!({"typ": "JWT", "alg": alg, "kid": forger.kid}));
        refused(
            &app,
            &format!("alg={alg}, empty signature"),
            &format!("{header}.{body}."),
        )
        .await;
        refused(
            &app,
            &format!("alg={alg}, no signature segment"),
            &format!("{header}.{body}"),
        )
        .await;
        refused(
            &app,
            &format!("alg={alg}, with a genuine signature segment"),
            &format!("{header}.{body}.{genuine_signature}"),
        )
        .await;
    }
    refused(
        &app,
        "header without alg",
        &forger.sign(&json!({"typ": "JWT", "kid": forger.kid}), &claims),
    )
    .await;
    refused(
        &app,
        "EdDSA with an empty signature",
        &format!("{}.{body}.", b64_json(&forger.header())),
    )
    .await;
    // Algorithm confusion: HMAC keyed with what the JWKS publishes.
    let x = B64.encode(&forger.public_raw);
    for (what, secret) in [
        ("raw public key bytes", forger.public_raw.clone()),
        ("JWKS `x` text", x.clone().into_bytes()),
        ("private key DER", forger.private_der.clone()),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(forger.kid.clone());
            let token =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret)).unwrap();
            refused(&app, &format!("{alg:?} keyed with the {what}"), &token).await;
        }
    }
    // Other asymmetric algorithms naming our kid, signed (validly, for Ed25519) by our key.
    for alg in [
        "RS256", "ES256", "PS256", "ES384", "Ed25519", "EDDSA", "eddsa",
    ] {
        let header = json!({"typ": "JWT", "alg": alg, "kid": forger.kid});
        refused(
            &app,
            &format!("alg={alg} with our kid"),
            &forger.sign(&header, &claims),
        )
        .await;
        refused(
            &app,
            &format!("alg={alg} with our kid and the original signature"),
            &format!("{}.{body}.{genuine_signature}", b64_json(&header)),
        )
        .await;
    }
}

async fn key_ids_other_than_ours_are_refused(app: TestApp) {
    let user = app.register("kid@example.com").await;
    let forger = Forger::of(&app).await;
    let claims = forger.claims(&user);
    accepted(&app, "our kid", &forger.valid(&claims)).await;
    let kid = forger.kid.clone();
    let mut header = forger.header();
    header.as_object_mut().unwrap().remove("kid");
    refused(&app, "missing kid", &forger.sign(&header, &claims)).await;
    let long = "k".repeat(1000);
    let tricks: Vec<(&str, Value)> = vec![
        ("unknown kid", json!("2026-key-that-never-existed")),
        ("empty kid", json!("")),
        ("null kid", Value::Null),
        ("numeric kid", json!(1)),
        ("kid as array", json!([kid])),
        ("path traversal kid", json!("../../../../etc/passwd")),
        (
            "path traversal after our kid",
            json!(format!("{kid}/../{kid}")),
        ),
        ("SQL-ish kid", json!("' OR '1'='1")),
        ("SQL comment after our kid", json!(format!("{kid}' --"))),
        (
            "SQL statement kid",
            json!("x'; DELETE FROM signing_keys; --"),
        ),
        ("our kid with a NUL byte", json!(format!("{kid}\u{0}"))),
        ("our kid with a trailing space", json!(format!("{kid} "))),
        ("our kid upper-cased", json!(kid.to_uppercase())),
        ("our kid truncated", json!(kid[..kid.len() - 1].to_owned())),
        ("1000-character kid", json!(long)),
    ];
    for (case, value) in tricks {
        let mut header = forger.header();
        header["kid"] = value;
        refused(&app, case, &forger.sign(&header, &claims)).await;
    }
    // A well-formed key of someone else, with its own kid (and with ours).
    let stranger = SigningKey::from_bytes(&[7u8; 32]);
    let der = stranger.to_pkcs8_der().unwrap();
    for (case, stranger_kid) in [
        ("a stranger's Ed25519 key and kid", "stranger-key"),
        ("a stranger's Ed25519 key with our kid", kid.as_str()),
    ] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(stranger_kid.to_owned());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
                .unwrap();
        refused(&app, case, &token).await;
    }
    // Nothing was deleted by the SQL-ish kids.
    accepted(&app, "our kid, after the tricks", &forger.valid(&claims)).await;
    assert_eq!(app.jwks_kids().await, [kid]);
}

async fn wrong_issuer_audience_and_times_are_refused(app: TestApp) {
    let user = app.register("claims@example.com").await;
    let forger = Forger::of(&app).await;
    let base = forger.claims(&user);
    let t = now();
    // The leeway is 30 s: inside it is accepted, beyond it refused.
    accepted(
        &app,
        "exp 10 s ago",
        &forger.valid(&with_claims(&base, |c| {
            c.insert("exp".into(), json!(t - 10));
        })),
    )
    .await;
    accepted(
        &app,
        "nbf 10 s ahead",
        &forger.valid(&with_claims(&base, |c| {
            c.insert("nbf".into(), json!(t + 10));
        })),
    )
    .await;
    let cases: Vec<(&str, Value)> = vec![
        (
            "wrong iss",
            with_claims(&base, |c| {
                c.insert("iss".into(), json!("https://evil.example.com"));
            }),
        ),
        (
            "iss with a trailing slash",
            with_claims(&base, |c| {
                c.insert("iss".into(), json!(format!("{}/", forger.issuer)));
            }),
        ),
        (
            "missing iss",
            with_claims(&base, |c| {
                c.remove("iss");
            }),
        ),
        (
            "wrong aud",
            with_claims(&base, |c| {
                c.insert("aud".into(), json!("someone-else"));
            }),
        ),
        (
            "aud list without ours",
            with_claims(&base, |c| {
                c.insert("aud".into(), json!(["a", "b"]));
            }),
        ),
        (
            "missing aud",
            with_claims(&base, |c| {
                c.remove("aud");
            }),
        ),
        (
            "expired beyond the leeway",
            with_claims(&base, |c| {
                c.insert("exp".into(), json!(t - 120));
            }),
        ),
        (
            "expired long ago",
            with_claims(&base, |c| {
                c.insert("exp".into(), json!(1));
            }),
        ),
        (
            "missing exp",
            with_claims(&base, |c| {
                c.remove("exp");
            }),
        ),
        (
            "exp as a string",
            with_claims(&base, |c| {
                c.insert("exp".into(), json!("4000000000"));
            }),
        ),
        (
            "not yet valid beyond the leeway",
            with_claims(&base, |c| {
                c.insert("nbf".into(), json!(t + 120));
            }),
        ),
        (
            "missing nbf",
            with_claims(&base, |c| {
                c.remove("nbf");
            }),
        ),
        (
            "missing sub",
            with_claims(&base, |c| {
                c.remove("sub");
            }),
        ),
        (
            "sub not a user id",
            with_claims(&base, |c| {
                c.insert("sub".into(), json!("admin"));
            }),
        ),
        (
            "missing sid",
            with_claims(&base, |c| {
                c.remove("sid");
            }),
        ),
    ];
    for (case, claims) in cases {
        refused(&app, case, &forger.valid(&claims)).await;
    }
}

/// Flips one bit of the decoded segment `index` at byte `byte`.
fn flip(token: &str, index: usize, byte: usize, bit: u8) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut raw = B64.decode(&parts[index]).unwrap();
    raw[byte] ^= 1 << bit;
    parts[index] = B64.encode(raw);
    parts.join(".")
}

async fn bit_flips_anywhere_are_refused(app: TestApp) {
    let user = app.register("flip@example.com").await;
    let token = user.token.clone();
    app.get("/api/v1/users/me", Some(&token)).await.assert(200);
    let lengths: Vec<usize> = token
        .split('.')
        .map(|s| B64.decode(s).unwrap().len())
        .collect();
    assert_eq!(lengths[2], 64, "an Ed25519 signature");
    for (segment, name) in [(2, "signature"), (1, "payload"), (0, "header")] {
        for byte in 0..lengths[segment] {
            // A different bit per byte: low, high and the ASCII case bit all get hit.
            let bit = u8::try_from(byte % 8).unwrap();
            let flipped = flip(&token, segment, byte, bit);
            refused(
                &app,
                &format!("{name} byte {byte} bit {bit} flipped"),
                &flipped,
            )
            .await;
        }
    }
    // Text-level damage to the base64url itself.
    let mut extra = token.clone();
    extra.push('A');
    refused(&app, "a character appended to the signature", &extra).await;
    refused(
        &app,
        "signature segment dropped",
        token.rsplit_once('.').unwrap().0,
    )
    .await;
    refused(
        &app,
        "a fourth segment",
        &format!("{token}.{}", B64.encode("x")),
    )
    .await;
    refused(&app, "padding added", &format!("{token}==")).await;
    // The untouched token still works: none of the above was memoised in its place.
    app.get("/api/v1/users/me", Some(&token)).await.assert(200);
}

async fn tokens_not_bound_to_a_live_session_of_their_subject_are_refused(app: TestApp) {
    let victim = app.register("victim@example.com").await;
    let attacker = app.register("attacker@example.com").await;
    let forger = Forger::of(&app).await;
    let victim_claims = forger.claims(&victim);
    let attacker_claims = forger.claims(&attacker);
    accepted(
        &app,
        "the victim's own claims",
        &forger.valid(&victim_claims),
    )
    .await;
    refused(
        &app,
        "sub of the victim with the attacker's session",
        &forger.valid(&with_claims(&attacker_claims, |c| {
            c.insert("sub".into(), victim_claims["sub"].clone());
        })),
    )
    .await;
    refused(
        &app,
        "sub of the attacker with the victim's session",
        &forger.valid(&with_claims(&victim_claims, |c| {
            c.insert("sub".into(), attacker_claims["sub"].clone());
        })),
    )
    .await;
    refused(
        &app,
        "a session that does not exist",
        &forger.valid(&with_claims(&victim_claims, |c| {
            c.insert("sid".into(), json!(uuid::Uuid::now_v7()));
        })),
    )
    .await;
    // Logging out revokes the session: the genuine token and a fresh forgery both die.
    let forged_for_session = forger.valid(&victim_claims);
    app.post("/api/v1/auth/logout", Some(&victim.token), json!({}))
        .await
        .assert(204);
    refused(&app, "genuine token of a logged-out session", &victim.token).await;
    refused(
        &app,
        "validly signed token of a logged-out session",
        &forged_for_session,
    )
    .await;
    refused(
        &app,
        "refresh token of a logged-out session used as a bearer token",
        &victim.refresh,
    )
    .await;
    let r = app.refresh(&victim.refresh).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (401, "invalid_token"),
        "refresh of a logged-out session: {}",
        r.body
    );
    accepted(&app, "the attacker's own session", &attacker.token).await;
}
