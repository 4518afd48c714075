//! REST API behaviour: OAuth tokens, sObject Collections upserts, Composite, SOQL.

mod common;

use std::time::Duration;

use common::{account, start};
use salesforce_simulator::{CallKind, Config};
use serde_json::{json, Value};

#[tokio::test]
async fn expired_or_revoked_tokens_get_invalid_session_id() {
    let org = start(Config::default()).await;
    let (status, _) = org.get("/limits").await;
    assert_eq!(status, 200);

    org.sim.advance_clock(Duration::from_secs(2 * 3600 + 1));
    let (status, body) = org.get("/limits").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );

    let fresh = common::login(&org.http, &org.sim).await;
    let resp = org
        .http
        .get(org.url("/limits"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    org.sim.revoke_token(&fresh);
    let resp = org
        .http
        .get(org.url("/limits"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn wrong_client_secret_is_refused() {
    let org = start(Config::default()).await;
    let resp = org
        .http
        .post(format!("{}/services/oauth2/token", org.sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "x"),
            ("client_secret", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn upsert_by_external_id_is_idempotent() {
    let org = start(Config::default()).await;
    let batch =
        json!({"allOrNone": false, "records": [account("c1", "Acme"), account("c2", "Globex")]});
    let path = "/composite/sobjects/Account/Shopify_Company_Id__c";
    let (status, first) = org.patch(path, batch.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert!(first
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["success"] == true && r["created"] == true));
    let (_, second) = org.patch(path, batch).await;
    assert!(second
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["success"] == true && r["created"] == false));
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(org.sim.count("Account"), 2);
    let id = first[0]["id"].as_str().unwrap();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));
}

#[tokio::test]
async fn more_than_200_records_are_refused() {
    let org = start(Config::default()).await;
    let records: Vec<Value> = (0..201).map(|i| account(&format!("c{i}"), "A")).collect();
    let (status, body) = org
        .patch(
            "/composite/sobjects/Account/Shopify_Company_Id__c",
            json!({"records": records}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    assert_eq!(org.sim.count("Account"), 0);
}

#[tokio::test]
async fn partial_failure_saves_the_valid_records() {
    let org = start(Config::default()).await;
    let records = json!([
        account("ok1", "Fine"),
        {"attributes": {"type": "Account"}, "Shopify_Company_Id__c": "bad1"},
        account("bad2", &"x".repeat(256)),
        account("ok2", "Also fine"),
    ]);
    let (status, body) = org
        .patch(
            "/composite/sobjects/Account/Shopify_Company_Id__c",
            json!({"allOrNone": false, "records": records}),
        )
        .await;
    assert_eq!(status, 200);
    let codes: Vec<Value> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["errors"][0]["statusCode"].clone())
        .collect();
    assert_eq!(
        codes,
        vec![
            Value::Null,
            "REQUIRED_FIELD_MISSING".into(),
            "STRING_TOO_LONG".into(),
            Value::Null
        ]
    );
    assert_eq!(body[1]["errors"][0]["fields"], json!(["Name"]));
    assert_eq!(org.sim.count("Account"), 2);
}

#[tokio::test]
async fn all_or_none_rolls_back_every_record() {
    let org = start(Config::default()).await;
    let records = json!([account("a1", "One"), {"attributes": {"type": "Account"}, "Shopify_Company_Id__c": "a2"}]);
    let (_, body) = org
        .patch(
            "/composite/sobjects/Account/Shopify_Company_Id__c",
            json!({"allOrNone": true, "records": records}),
        )
        .await;
    assert_eq!(body[0]["success"], false);
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(body[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(org.sim.count("Account"), 0);
    assert!(
        org.sim.change_events().is_empty(),
        "rolled back writes publish no events"
    );
}

#[tokio::test]
async fn relationships_resolve_by_external_id() {
    let org = start(Config::default()).await;
    org.patch(
        "/composite/sobjects/Account/Shopify_Company_Id__c",
        json!({"records": [account("co1", "Acme")]}),
    )
    .await;
    let contacts = json!({"records": [
        {"attributes": {"type": "Contact"}, "LastName": "Doe", "Email": "jd@acme.com",
         "Shopify_Customer_Id__c": "cu1", "Account": {"Shopify_Company_Id__c": "co1"}},
        {"attributes": {"type": "Contact"}, "LastName": "Roe",
         "Shopify_Customer_Id__c": "cu2", "Account": {"Shopify_Company_Id__c": "missing"}},
    ]});
    let (_, body) = org
        .patch(
            "/composite/sobjects/Contact/Shopify_Customer_Id__c",
            contacts,
        )
        .await;
    assert_eq!(body[0]["success"], true, "{body}");
    assert_eq!(body[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    let acme = org
        .sim
        .record_by_external_id("Account", "Shopify_Company_Id__c", "co1")
        .unwrap();
    let doe = org
        .sim
        .record_by_external_id("Contact", "Shopify_Customer_Id__c", "cu1")
        .unwrap();
    assert_eq!(doe["AccountId"], acme["Id"]);

    let (status, rows) = org
        .query("SELECT Id, LastName, Account.Name FROM Contact WHERE Account.Name = 'acme'")
        .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows["totalSize"], 1);
    assert_eq!(rows["records"][0]["Account"]["Name"], "Acme");
}

#[tokio::test]
async fn duplicate_rule_blocks_creating_a_matching_account() {
    let org = start(Config::default()).await;
    let acme = json!({"attributes": {"type": "Account"}, "Name": "Acme", "Website": "https://www.acme.com", "Shopify_Company_Id__c": "d1"});
    let twin = json!({"attributes": {"type": "Account"}, "Name": "ACME", "Website": "acme.com/shop", "Shopify_Company_Id__c": "d2"});
    let path = "/composite/sobjects/Account/Shopify_Company_Id__c";
    let (_, body) = org
        .patch(path, json!({"records": [acme.clone(), twin]}))
        .await;
    assert_eq!(body[0]["success"], true);
    assert_eq!(body[1]["errors"][0]["statusCode"], "DUPLICATES_DETECTED");
    // Updating the existing one is not a create: allowed.
    let (_, body) = org.patch(path, json!({"records": [acme]})).await;
    assert_eq!(body[0]["success"], true);
}

#[tokio::test]
async fn validation_rule_and_required_fields_on_orders() {
    let org = start(Config::default()).await;
    org.patch(
        "/composite/sobjects/Account/Shopify_Company_Id__c",
        json!({"records": [account("o1", "Acme")]}),
    )
    .await;
    let (_, product) = org
        .post(
            "/sobjects/Product2",
            json!({"Name": "Widget", "Shopify_Variant_Id__c": "v1"}),
        )
        .await;
    let book = org.sim.standard_pricebook_id();
    let (status, entry) = org
        .post("/sobjects/PricebookEntry", json!({"Pricebook2Id": book, "Product2Id": product["id"], "UnitPrice": 10, "IsActive": true}))
        .await;
    assert_eq!(status, 201, "{entry}");
    let (status, body) = org
        .patch(
            "/sobjects/Order/Shopify_Order_Id__c/ord1",
            json!({"Account": {"Shopify_Company_Id__c": "o1"}, "Pricebook2Id": book}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    let (status, order) = org
        .patch(
            "/sobjects/Order/Shopify_Order_Id__c/ord1",
            json!({"Account": {"Shopify_Company_Id__c": "o1"}, "Pricebook2Id": book, "EffectiveDate": "2026-01-02"}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let line = |q: f64| {
        json!({"records": [{"attributes": {"type": "OrderItem"}, "Shopify_Line_Id__c": "l1",
            "Order": {"Shopify_Order_Id__c": "ord1"}, "PricebookEntryId": entry["id"], "Quantity": q, "UnitPrice": 10}]})
    };
    let (_, body) = org
        .patch(
            "/composite/sobjects/OrderItem/Shopify_Line_Id__c",
            line(0.0),
        )
        .await;
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    let (_, body) = org
        .patch(
            "/composite/sobjects/OrderItem/Shopify_Line_Id__c",
            line(2.0),
        )
        .await;
    assert_eq!(body[0]["success"], true, "{body}");
    let item = org
        .sim
        .record_by_external_id("OrderItem", "Shopify_Line_Id__c", "l1")
        .unwrap();
    assert_eq!(
        item["Product2Id"], product["id"],
        "the product comes from the price book entry"
    );
    // The order and the price book entry are set on create only, upserts included.
    let (_, body) = org
        .patch(
            "/composite/sobjects/OrderItem/Shopify_Line_Id__c",
            line(3.0),
        )
        .await;
    assert_eq!(
        body[0]["errors"][0]["statusCode"], "INVALID_FIELD_FOR_INSERT_UPDATE",
        "{body}"
    );
    let (_, body) = org
        .patch(
            "/composite/sobjects/OrderItem/Shopify_Line_Id__c",
            json!({"records": [{"Shopify_Line_Id__c": "l1", "Quantity": 3, "UnitPrice": 10}]}),
        )
        .await;
    assert_eq!(body[0]["success"], true, "{body}");
    // An order without a price book takes no items.
    org.patch(
        "/sobjects/Order/Shopify_Order_Id__c/ord2",
        json!({"Account": {"Shopify_Company_Id__c": "o1"}, "EffectiveDate": "2026-01-02"}),
    )
    .await;
    let (_, body) = org
        .patch(
            "/composite/sobjects/OrderItem/Shopify_Line_Id__c",
            json!({"records": [{"Shopify_Line_Id__c": "l2", "Order": {"Shopify_Order_Id__c": "ord2"},
                "PricebookEntryId": entry["id"], "Quantity": 1, "UnitPrice": 10}]}),
        )
        .await;
    assert_eq!(
        body[0]["errors"][0]["statusCode"], "FIELD_INTEGRITY_EXCEPTION",
        "{body}"
    );
}

#[tokio::test]
async fn soql_filters_order_and_pages() {
    let org = start(Config {
        query_page_size: 3,
        ..Config::default()
    })
    .await;
    let records: Vec<Value> = (0..8)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Shop {i}"), "Shopify_Company_Id__c": format!("p{i}"),
            "Industry": if i % 2 == 0 { Value::from("Retail") } else { Value::Null }}))
        .collect();
    org.patch(
        "/composite/sobjects/Account/Shopify_Company_Id__c",
        json!({"records": records}),
    )
    .await;

    let (_, page) = org
        .query("SELECT Name FROM Account WHERE (Industry = 'Retail' OR Industry = null) AND Name LIKE 'Shop%' ORDER BY Name DESC")
        .await;
    assert_eq!(page["totalSize"], 8);
    assert_eq!(page["done"], false);
    assert_eq!(page["records"].as_array().unwrap().len(), 3);
    assert_eq!(page["records"][0]["Name"], "Shop 7");
    let mut names: Vec<Value> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].clone())
        .collect();
    let mut next = page["nextRecordsUrl"].as_str().map(str::to_owned);
    while let Some(url) = next {
        let path = url
            .split_once("/query")
            .map(|(_, p)| format!("/query{p}"))
            .unwrap();
        let (status, page) = org.get(&path).await;
        assert_eq!(status, 200);
        names.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Name"].clone()),
        );
        next = page["nextRecordsUrl"].as_str().map(str::to_owned);
    }
    assert_eq!(names.len(), 8);
    assert_eq!(names.last().unwrap(), "Shop 0");

    let (_, retail) = org.query("SELECT Id FROM Account WHERE Industry != null AND Shopify_Company_Id__c IN ('p0','p1','p2')").await;
    assert_eq!(retail["totalSize"], 2);
    let (_, limited) = org
        .query("SELECT Id FROM Account ORDER BY Name LIMIT 2")
        .await;
    assert_eq!(limited["totalSize"], 2);
    let (status, bad) = org.query("SELECT Nope FROM Account").await;
    assert_eq!(status, 400);
    assert_eq!(bad[0]["errorCode"], "INVALID_FIELD");
    let (status, bad) = org.query("SELECT Id FROM Account WHERE").await;
    assert_eq!(status, 400);
    assert_eq!(bad[0]["errorCode"], "MALFORMED_QUERY");
}

#[tokio::test]
async fn composite_uses_references_and_rolls_back_all_or_none() {
    let org = start(Config::default()).await;
    let ok = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": "acct", "body": {"Name": "Acme"}},
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Contact", "referenceId": "ct", "body": {"LastName": "Doe", "AccountId": "@{acct.id}"}},
        {"method": "GET", "url": "/services/data/v62.0/sobjects/Contact/@{ct.id}", "referenceId": "read"},
    ]});
    let (status, body) = org.post("/composite", ok).await;
    assert_eq!(status, 200);
    let responses = body["compositeResponse"].as_array().unwrap();
    assert_eq!(responses[0]["httpStatusCode"], 201);
    assert_eq!(
        responses[2]["body"]["AccountId"],
        responses[0]["body"]["id"]
    );
    assert_eq!(org.sim.count("Contact"), 1);

    let failing = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": "a", "body": {"Name": "Second"}},
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Contact", "referenceId": "c", "body": {"AccountId": "@{a.id}"}},
    ]});
    let (_, body) = org.post("/composite", failing).await;
    let responses = body["compositeResponse"].as_array().unwrap();
    assert_eq!(responses[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        responses[1]["body"][0]["errorCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(
        org.sim.count("Account"),
        1,
        "the second account was rolled back"
    );
    assert_eq!(org.sim.call_count(CallKind::Composite), 2);

    let too_many: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": "/services/data/v62.0/limits", "referenceId": format!("r{i}")}))
        .collect();
    let (status, _) = org
        .post("/composite", json!({"compositeRequest": too_many}))
        .await;
    assert_eq!(status, 400);
}
