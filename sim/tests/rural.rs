//! The rural case: a handful of seeds through the whole bench (updated, exact image, and the
//! runs really went through outages, deregistration and re-attach), and the modem's side of
//! a deregistration byte for byte.

mod modem_harness;

use std::time::Duration;

use modem_harness::*;
use sim::modem::Dialect;
use sim::rural::{run, rural_spec, summarise};

#[test]
fn a_handful_of_rural_seeds_update_through_outages_and_reattach() {
    let results: Vec<_> = (0..6).map(|seed| run(&rural_spec(seed))).collect();
    for r in &results {
        let row = serde_json::to_string(r).unwrap();
        assert_eq!(r.outcome, "updated", "{row}");
        assert!(r.slot_matches, "{row}");
        assert!(r.outages >= 1 && r.outage_s >= 10.0, "no outage inside the run: {row}");
        assert!(r.virtual_s >= r.link_limit_s, "faster than the link allows: {row}");
        if r.deregistrations > 0 {
            assert_eq!(r.reattaches, r.deregistrations, "{row}");
            assert!(r.modem_recoveries >= 1, "the driver never re-attached: {row}");
        }
    }
    let dereg = results.iter().filter(|r| r.deregistrations > 0).count();
    let plain = results.iter().filter(|r| r.deregistrations == 0).count();
    assert!(dereg >= 2 && plain >= 1, "{dereg} runs deregistered, {plain} did not");
    let summary = summarise(&results);
    assert_eq!((summary.updated, summary.corrupt), (6, 0));
    assert!(summary.nat_drops >= 1, "no NAT forgot a mapping during an outage");
}

#[tokio::test(start_paused = true)]
async fn sim7600_reports_deregistration_and_refuses_the_packet_network_until_reattached() {
    let mut b = ready(config(Dialect::Sim7600), no_nat()).await;
    b.dev.cmd("AT+CEREG=1", "\r\nOK\r\n").await;
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n").await;
    b.modem.deregister(2);
    b.dev
        .expect("\r\n+CEREG: 2\r\n\r\n+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY\r\n")
        .await;
    b.dev.cmd("AT+CEREG?", "\r\n+CEREG: 1,2\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CGATT?", "\r\n+CGATT: 0\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+COPS?", "\r\n+COPS: 0\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 1\r\n").await;
    b.dev.cmd("AT+NETOPEN?", "\r\n+NETOPEN: 0\r\n\r\nOK\r\n").await;
    b.modem.reattach();
    b.dev.expect("\r\n+CEREG: 1\r\n").await;
    b.dev.cmd("AT+CEREG?", "\r\n+CEREG: 1,1\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+NETOPEN", "\r\nOK\r\n\r\n+NETOPEN: 0\r\n").await;
    assert_eq!((b.modem.stats().deregistrations, b.modem.stats().reattaches), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn sim7080_without_the_notice_enabled_says_nothing_but_the_pdp_loss() {
    let mut b = ready(config(Dialect::Sim7080), no_nat()).await;
    b.dev.cmd("AT+CNACT=0,1", "\r\nOK\r\n\r\n+APP PDP: 0,ACTIVE\r\n").await;
    b.modem.deregister(0);
    b.dev.expect("\r\n+APP PDP: 0,DEACTIVE\r\n").await;
    b.dev.cmd("AT+CEREG?", "\r\n+CEREG: 0,0\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CNACT=0,1", "\r\nERROR\r\n").await;
    b.modem.reattach();
    b.dev.silent_for(Duration::from_secs(5)).await;
    b.dev.cmd("AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n").await;
    b.dev.cmd("AT+CNACT=0,1", "\r\nOK\r\n\r\n+APP PDP: 0,ACTIVE\r\n").await;
}
