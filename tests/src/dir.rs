//! `TestDir`: one test's whole world in a temporary folder (development
//! PKI, default policies, audit log key, configs), and the hub started on
//! port 0 from it.

use super::*;

/// A temporary folder holding a PKI, policies and databases.
pub struct TestDir {
    pub dir: TempDir,
    pub pki: PkiLayout,
    /// The hub's PostgreSQL database, when the tests run on PostgreSQL.
    pub postgres: Option<PostgresTestDb>,
}

impl TestDir {
    /// Makes a folder with a fresh PKI for every member and the outsider,
    /// and the default policy set.
    pub fn new() -> Self {
        Self::with_store(TestStore::from_env())
    }

    /// A folder whose hubs use a fresh PostgreSQL database, whatever
    /// `KITH_TEST_DATABASE` says (for tests of several hubs on one database).
    pub fn on_postgres() -> Self {
        Self::with_store(TestStore::Postgres)
    }

    /// A folder whose hubs use `store`, whatever `KITH_TEST_DATABASE` says
    /// (also what `kith-bench` builds its federation with).
    pub fn with_store(store: TestStore) -> Self {
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
        let postgres = match store {
            TestStore::Sqlite => None,
            TestStore::Postgres => Some(PostgresTestDb::create()),
        };
        Self { dir, pki, postgres }
    }

    /// Which store this folder's hubs use.
    pub fn store_kind(&self) -> TestStore {
        if self.postgres.is_some() {
            TestStore::Postgres
        } else {
            TestStore::Sqlite
        }
    }

    /// The hubs' `database_url`: `hub.db` in this folder, or this folder's
    /// own PostgreSQL database.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(db) => db.url(),
            None => format!("sqlite://{}", self.path().join("hub.db").display()),
        }
    }

    /// A pool on this folder's PostgreSQL database, for tests that reach
    /// past the hub (to tamper with rows, or to look for data). Panics on
    /// SQLite.
    pub async fn postgres_pool(&self) -> sqlx::PgPool {
        let db = self
            .postgres
            .as_ref()
            .expect("this test folder uses SQLite, not PostgreSQL");
        sqlx::PgPool::connect(&db.url())
            .await
            .expect("test database")
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

    /// A hub config on 127.0.0.1:`port` (0 for any) with this folder's
    /// database (see [`TestDir::database_url`]).
    pub fn hub_config(&self, port: u16) -> HubConfig {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            database_url: self.database_url(),
            jurisdiction: "england".into(),
            policy_dir: self.path().join("policies"),
            policy_reload_interval_ms: 100,
            tls_reload_interval_ms: 100,
            detail_timeout_ms: 2000,
            tls: TlsFiles {
                ca: self.pki.ca_cert(),
                cert: self.pki.hub_cert(),
                key: self.pki.hub_key(),
            },
            sharing: Default::default(),
            limits: Default::default(),
            audit: kith_hub::config::AuditConfig {
                signing_key: self.path().join("pki").join("audit-log.skey"),
                checkpoint_interval_ms: 50,
            },
            // Many hubs run in one test process: each on a free port.
            metrics: kith_ops::MetricsConfig::any_loopback_port(),
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
        // Many agents run in one test process: each on a free port.
        config.metrics = kith_ops::MetricsConfig::any_loopback_port();
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
