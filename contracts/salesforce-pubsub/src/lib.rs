//! Salesforce's Pub/Sub API (`eventbus.v1.PubSub`, vendored in `proto/`) compiled into tonic
//! types, client ([`pub_sub_client`]) and server ([`pub_sub_server`]). The Salesforce client
//! subscribes with the first, the simulator serves the second; neither keeps its own copy.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("eventbus.v1");
