//! Salesforce records against what the outbox last sent (being built).
