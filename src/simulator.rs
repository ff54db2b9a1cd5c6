//! Temporary stub (replaced by the real simulator).
#![allow(dead_code)]
use std::net::SocketAddr;
#[derive(Default)]
pub struct SimulatorConfig;
pub struct Credentials {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    pub refresh_token: String,
}
pub struct Simulator;
pub struct SimCustomer {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub costs: SimCosts,
}
pub enum SimCosts {
    Documented,
    NoData,
    Generated(Vec<SimDetail>),
}
pub struct SimDetail {
    pub invoice_type: String,
    pub currency: String,
    pub pretax: f64,
    pub tax: f64,
    pub billing_start: String,
    pub billing_end: String,
}
impl Simulator {
    pub async fn start(_c: SimulatorConfig) -> std::io::Result<Simulator> {
        Err(std::io::Error::other("stub"))
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }
    pub fn url(&self) -> String {
        String::new()
    }
    pub fn credentials(&self) -> Credentials {
        Credentials {
            tenant: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            username: String::new(),
            password: String::new(),
            refresh_token: String::new(),
        }
    }
    pub fn customers(&self) -> Vec<SimCustomer> {
        Vec::new()
    }
    pub async fn shutdown(self) {}
}
