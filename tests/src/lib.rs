//! Helpers for the cross-process tests: a development PKI, a real hub on
//! port 0 over mutual TLS with its own database, agents configured against
//! it, and raw gRPC clients that speak to the hub exactly as an agent does.
//!
//! In the manner of zero2prod's `tests/api/helpers.rs`: every test builds
//! its own federation in its own temporary folder, so tests run in parallel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kith_agent::config::AgentConfig;
use kith_core::AuthorityCode;
use kith_core::pki::{self, CertificateAuthority, PkiLayout, Validity};
use kith_core::tls::TlsFiles;
use kith_hub::config::HubConfig;
use kith_hub::directory::Member;
use kith_hub::server::RunningHub;
use kith_proto::v1 as pb;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

pub use kith_proto::v1;

/// Manchester City Council.
pub const COUNCIL_A: &str = "E08000003";
/// Salford City Council.
pub const COUNCIL_B: &str = "E08000006";
/// Manchester University NHS Foundation Trust.
pub const TRUST_C: &str = "R0A";
/// Greater Manchester Police.
pub const POLICE_D: &str = "GMP";
/// The federation's oversight body (authority kind `federation`), whose
/// `federation_auditor` reads every audit entry.
pub const OVERSIGHT: &str = "KITH-OVERSIGHT";
/// An authority with a valid certificate that is not in the directory.
pub const OUTSIDER: &str = "X99";

/// The federation members every test hub knows.
pub fn members() -> Vec<Member> {
    let m = |code: &str, name: &str, kind: &str| Member {
        code: code.into(),
        name: name.into(),
        kind: kind.into(),
        jurisdiction: "england".into(),
    };
    vec![
        m(COUNCIL_A, "Manchester City Council", "council"),
        m(COUNCIL_B, "Salford City Council", "council"),
        m(
            TRUST_C,
            "Manchester University NHS Foundation Trust",
            "nhs_trust",
        ),
        m(POLICE_D, "Greater Manchester Police", "police"),
        m(OVERSIGHT, "Kith Federation Oversight Board", "federation"),
    ]
}

/// A temporary folder holding a PKI, policies and databases.
pub struct TestDir {
    pub dir: TempDir,
    pub pki: PkiLayout,
}

impl TestDir {
    /// Makes a folder with a fresh PKI for every member and the outsider,
    /// and the default policy set.
    pub fn new() -> Self {
        kith_core::tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let codes: Vec<AuthorityCode> =
            [COUNCIL_A, COUNCIL_B, TRUST_C, POLICE_D, OVERSIGHT, OUTSIDER]
                .iter()
                .map(|c| AuthorityCode::new(*c).unwrap())
                .collect();
        let pki = pki::init(
            &dir.path().join("pki"),
            &["localhost".into(), "127.0.0.1".into()],
            &codes,
        )
        .expect("dev PKI");
        kith_hub::default_policies::write_to(&dir.path().join("policies"), true).expect("policies");
        kith_hub::transparency::write_key(
            &dir.path().join("pki"),
            kith_hub::transparency::DEV_ORIGIN,
        )
        .expect("log key");
        Self { dir, pki }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The audit log's verifier key (C2SP vkey), as auditors are given it.
    pub fn log_vkey(&self) -> PathBuf {
        self.path().join("pki").join("audit-log.vkey")
    }

    /// Client TLS files for `code`.
    pub fn agent_tls(&self, code: &str) -> TlsFiles {
        let code = AuthorityCode::new(code).unwrap();
        TlsFiles {
            ca: self.pki.ca_cert(),
            cert: self.pki.authority_cert(&code),
            key: self.pki.authority_key(&code),
        }
    }

    /// A hub config on 127.0.0.1:`port` (0 for any) with a database in this folder.
    pub fn hub_config(&self, port: u16) -> HubConfig {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            database_url: format!("sqlite://{}", self.path().join("hub.db").display()),
            jurisdiction: "england".into(),
            policy_dir: self.path().join("policies"),
            policy_reload_interval_ms: 100,
            detail_timeout_ms: 2000,
            tls: TlsFiles {
                ca: self.pki.ca_cert(),
                cert: self.pki.hub_cert(),
                key: self.pki.hub_key(),
            },
            audit: kith_hub::config::AuditConfig {
                signing_key: self.path().join("pki").join("audit-log.skey"),
                checkpoint_interval_ms: 50,
            },
            authorities: members(),
        }
    }

    /// Starts a hub on any free port.
    pub async fn start_hub(&self) -> RunningHub {
        kith_hub::server::start(&self.hub_config(0))
            .await
            .expect("hub starts")
    }

    /// An agent config for `code` against a hub at `addr`, with its own
    /// data and drop folders, publishing quickly and retrying fast.
    pub fn agent_config(&self, code: &str, addr: SocketAddr) -> AgentConfig {
        let base = self.path().join("agents").join(code);
        let mut config = AgentConfig::new(
            code,
            vec![format!("https://{addr}")],
            self.agent_tls(code),
            base.join("data"),
            base.join("drop"),
        );
        config.ingest.poll_interval_ms = 50;
        config.publish.backoff_initial_ms = 50;
        config.publish.backoff_max_ms = 500;
        config.publish.request_timeout_ms = 5_000;
        config.link.heartbeat_interval_seconds = 1;
        std::fs::create_dir_all(&config.drop_dir).unwrap();
        std::fs::create_dir_all(&config.data_dir).unwrap();
        config
    }

    /// Issues a certificate for `code` from a different, unknown CA.
    pub fn foreign_tls(&self, code: &str) -> TlsFiles {
        let ca = CertificateAuthority::generate("Some other CA").unwrap();
        self.write_leaf(&ca, code, Validity::default(), "foreign")
    }

    /// Issues an expired certificate for `code` from the federation CA.
    pub fn expired_tls(&self, code: &str) -> TlsFiles {
        let ca = CertificateAuthority::from_pem(
            &std::fs::read_to_string(self.pki.ca_cert()).unwrap(),
            &std::fs::read_to_string(self.pki.ca_key()).unwrap(),
        )
        .unwrap();
        self.write_leaf(
            &ca,
            code,
            Validity {
                from_days_ago: 30,
                until_days_from_now: -1,
            },
            "expired",
        )
    }

    fn write_leaf(
        &self,
        ca: &CertificateAuthority,
        code: &str,
        validity: Validity,
        tag: &str,
    ) -> TlsFiles {
        let leaf = ca
            .issue_authority(&AuthorityCode::new(code).unwrap(), validity)
            .unwrap();
        let dir = self.path().join(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join(format!("{code}.crt.pem"));
        let key = dir.join(format!("{code}.key.pem"));
        std::fs::write(&cert, leaf.cert_pem).unwrap();
        std::fs::write(&key, leaf.key_pem).unwrap();
        TlsFiles {
            ca: self.pki.ca_cert(),
            cert,
            key,
        }
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A channel to the hub at `addr` presenting `tls` (mutual TLS).
pub async fn channel(addr: SocketAddr, tls: &TlsFiles) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls.client_config("localhost").expect("tls files"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// A channel that trusts the hub but presents no client certificate.
pub async fn channel_without_certificate(
    addr: SocketAddr,
    ca: &Path,
) -> Result<Channel, tonic::transport::Error> {
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(ca).unwrap(),
        ))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

pub fn records_client(ch: Channel) -> pb::record_service_client::RecordServiceClient<Channel> {
    pb::record_service_client::RecordServiceClient::new(ch)
}

pub fn query_client(ch: Channel) -> pb::query_service_client::QueryServiceClient<Channel> {
    pb::query_service_client::QueryServiceClient::new(ch)
}

/// A valid record of `custodian` about NHS number `nhs`, as JSON.
pub fn record_json(
    custodian: &str,
    record_id: &str,
    version: u64,
    nhs: &str,
    relationship_type: &str,
    purposes: &[&str],
) -> String {
    serde_json::json!({
        "record_id": record_id,
        "version": version,
        "custodian": custodian,
        "subject": {"nhs_number": nhs, "demographics": {"given_name": "Amelia", "family_name": "O'Brien",
            "date_of_birth": "2015-04-12", "postcode": "M14 5RT"}},
        "relationship_type": relationship_type,
        "service": "Children's Services",
        "period": {"start": "2025-02-01"},
        "key_worker": {"name": "Jo Smith", "role": "Social worker", "phone": "0161 234 5000"},
        "out_of_hours": {"name": "Emergency Duty Team", "phone": "0161 234 5999"},
        "lawful_basis": {"article6": "public_task", "article9": "substantial_public_interest", "statute": "Children Act 1989 s47"},
        "permitted_purposes": purposes,
        "residency": "england",
        "provenance": {"source_system": "mosaic"}
    })
    .to_string()
}

/// The same record as a wire message.
pub fn record_wire(
    custodian: &str,
    record_id: &str,
    version: u64,
    nhs: &str,
    relationship_type: &str,
    purposes: &[&str],
) -> pb::RelationshipRecord {
    let record: kith_core::Record = serde_json::from_str(&record_json(
        custodian,
        record_id,
        version,
        nhs,
        relationship_type,
        purposes,
    ))
    .unwrap();
    kith_core::wire::record_to_wire(&record)
}

/// A query request from a user with `role` for `purpose`.
pub fn query_request(nhs: &str, purpose: pb::Purpose, role: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        acting_user: Some(pb::ActingUser {
            user_id: "u-1001".into(),
            display_name: "Sam Patel".into(),
            role: role.into(),
            team: "Children's Services".into(),
        }),
        purpose: purpose as i32,
        subject: Some(pb::Subject {
            nhs_number: nhs.into(),
            ..Default::default()
        }),
    }
}

/// Reads the hub's audit entries as JSON values, oldest first.
pub async fn audit_entries(hub: &RunningHub) -> Vec<serde_json::Value> {
    let entries = hub.hub().store().audit_entries(0, 100_000).await.unwrap();
    entries
        .into_iter()
        .map(|e| serde_json::from_slice(&e.entry).unwrap())
        .collect()
}

/// Waits until `f` is true, polling, up to `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Path of a file in the agent's drop folder.
pub fn drop_path(config: &AgentConfig, name: &str) -> PathBuf {
    config.drop_dir.join(name)
}

/// The `n`th valid NHS number in the test range 999 000 0000 – 999 999 9999.
pub fn test_nhs_number(n: u32) -> String {
    let mut k = n;
    loop {
        let mut nine = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
        let mut rest = k % 1_000_000;
        for slot in nine[3..].iter_mut().rev() {
            *slot = (rest % 10) as u8;
            rest /= 10;
        }
        if let Some(n) = kith_core::NhsNumber::from_first_nine(nine) {
            return n.as_digits();
        }
        k += 1_000_003; // skip prefixes with no valid check digit, stay distinct
    }
}
