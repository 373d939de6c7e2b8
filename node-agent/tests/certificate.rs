//! The certificate is checked before `query` and `status` call the hub: it
//! must name the configured authority and be within its dates, and each
//! problem is named plainly instead of surfacing as a transport error.

use std::path::Path;

use chrono::Utc;
use kith_agent::query::QueryError;
use kith_agent::{AgentConfig, ConfigError, QueryArgs};
use kith_core::Purpose;
use kith_core::identity::AuthorityCode;
use kith_core::pki::{CertificateAuthority, PkiLayout, Validity};
use kith_core::tls::TlsFiles;

const AUTHORITY: &str = "E08000003";

struct Setup {
    _dir: tempfile::TempDir,
    pki: PkiLayout,
    config: AgentConfig,
}

/// A PKI and a config whose hub address has nothing listening: any call
/// that reaches the network fails with a transport error.
fn setup() -> Setup {
    kith_core::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let code = AuthorityCode::new(AUTHORITY).unwrap();
    let pki = kith_core::pki::init(
        &dir.path().join("pki"),
        &["localhost".to_string()],
        std::slice::from_ref(&code),
    )
    .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = AgentConfig::new(
        AUTHORITY,
        vec![format!("https://{dead}")],
        TlsFiles {
            ca: pki.ca_cert(),
            cert: pki.authority_cert(&code),
            key: pki.authority_key(&code),
        },
        dir.path().join("data"),
        dir.path().join("drop"),
    );
    config.hub.connect_timeout_ms = 500;
    Setup {
        _dir: dir,
        pki,
        config,
    }
}

/// Replaces the agent's certificate (and key) with one issued by the same
/// CA for `authority`, valid as given.
fn reissue(pki: &PkiLayout, config: &AgentConfig, authority: &str, validity: Validity) {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let ca = CertificateAuthority::from_pem(&read(&pki.ca_cert()), &read(&pki.ca_key())).unwrap();
    let leaf = ca
        .issue_authority(&AuthorityCode::new(authority).unwrap(), validity)
        .unwrap();
    std::fs::write(&config.tls.cert, leaf.cert_pem).unwrap();
    std::fs::write(&config.tls.key, leaf.key_pem).unwrap();
}

const EXPIRED: Validity = Validity {
    from_days_ago: 30,
    until_days_from_now: -2,
};
const NOT_YET_VALID: Validity = Validity {
    from_days_ago: -3,
    until_days_from_now: 30,
};

fn args() -> QueryArgs {
    QueryArgs {
        nhs_number: Some("9434765919".into()),
        purpose: Some(Purpose::Safeguarding),
        user_id: "u1".into(),
        role: "social_worker".into(),
        ..QueryArgs::default()
    }
}

#[test]
fn the_certificate_check_names_expiry_and_not_yet_valid_with_dates() {
    let s = setup();
    s.config.check_certificate_at(Utc::now()).unwrap();
    let validity = s.config.certificate_validity().unwrap();
    assert!(validity.not_before < Utc::now() && Utc::now() < validity.not_after);

    reissue(&s.pki, &s.config, AUTHORITY, EXPIRED);
    let err = s.config.check_certificate_at(Utc::now()).unwrap_err();
    assert!(matches!(err, ConfigError::Certificate { .. }), "{err:?}");
    let expected_day = (Utc::now() - chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let msg = err.to_string();
    assert!(
        msg.contains("expired on") && msg.contains(&expected_day) && msg.contains("notAfter"),
        "{msg}"
    );
    assert!(
        msg.contains(&s.config.tls.cert.display().to_string()),
        "{msg}"
    );
    // The name alone is still right (`run` starts, and says so in its log).
    s.config.check_certificate().unwrap();

    reissue(&s.pki, &s.config, AUTHORITY, NOT_YET_VALID);
    let msg = s
        .config
        .check_certificate_at(Utc::now())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("not valid until") && msg.contains("notBefore"),
        "{msg}"
    );

    reissue(&s.pki, &s.config, "RX1", Validity::default());
    let msg = s
        .config
        .check_certificate_at(Utc::now())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("names authority RX1 but config key `authority` is E08000003"),
        "{msg}"
    );
}

#[tokio::test]
async fn query_refuses_an_expired_or_foreign_certificate_before_calling_the_hub() {
    let s = setup();
    // With a good certificate the query does try the (dead) hub.
    let err = kith_agent::query(&s.config, args()).await.unwrap_err();
    assert!(matches!(err, QueryError::Hub(_)), "{err:?}");

    reissue(&s.pki, &s.config, AUTHORITY, EXPIRED);
    let err = kith_agent::query(&s.config, args()).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueryError::Certificate(ConfigError::Certificate { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("expired on"), "{err}");

    reissue(&s.pki, &s.config, "RX1", Validity::default());
    let err = kith_agent::query(&s.config, args()).await.unwrap_err();
    assert!(err.to_string().contains("names authority RX1"), "{err}");
}

#[tokio::test]
async fn status_names_an_unusable_certificate_and_does_not_call_the_hub() {
    let s = setup();
    let status = kith_agent::status(&s.config).await.unwrap();
    assert_eq!(status.certificate_error, None);
    assert!(status.certificate_expires.is_some_and(|t| t > Utc::now()));
    assert!(
        status
            .hub_error
            .as_deref()
            .is_some_and(|e| e.contains("https://127.0.0.1")),
        "the hub was tried: {status:?}"
    );

    reissue(&s.pki, &s.config, AUTHORITY, NOT_YET_VALID);
    let status = kith_agent::status(&s.config).await.unwrap();
    let why = status
        .certificate_error
        .as_deref()
        .expect("a certificate problem");
    assert!(why.contains("not valid until"), "{why}");
    assert!(!status.is_healthy());
    assert_eq!(
        status.hub_error.as_deref(),
        Some("not contacted: the certificate cannot be used")
    );
    let text = status.to_string();
    assert!(
        text.contains("certificate    UNUSABLE: ") && text.contains("not valid until"),
        "{text}"
    );

    // In date and naming the authority, but a key of another certificate,
    // or signed by a CA outside the trust bundle: named as such too.
    reissue(&s.pki, &s.config, AUTHORITY, Validity::default());
    let other = CertificateAuthority::generate("Some other CA")
        .unwrap()
        .issue_authority(&AuthorityCode::new(AUTHORITY).unwrap(), Validity::default())
        .unwrap();
    std::fs::write(&s.config.tls.key, &other.key_pem).unwrap();
    let status = kith_agent::status(&s.config).await.unwrap();
    let why = status.certificate_error.expect("a key problem");
    assert!(why.contains("is not the key of certificate"), "{why}");
    std::fs::write(&s.config.tls.cert, &other.cert_pem).unwrap();
    let status = kith_agent::status(&s.config).await.unwrap();
    let why = status.certificate_error.expect("a trust problem");
    assert!(why.contains("is not signed by the trust bundle"), "{why}");
    assert_eq!(
        status.hub_error.as_deref(),
        Some("not contacted: the certificate cannot be used")
    );
}
