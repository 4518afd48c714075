//! The simulated org's metadata: which sObjects exist, their key prefixes and fields (type,
//! length, required, external id, lookups), as a describe call would report them.

/// The type of a field's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// The record id.
    Id,
    /// Text (also phone, picklist, text area).
    Text,
    /// An e-mail address (validated).
    Email,
    /// A URL.
    Url,
    /// True or false.
    Boolean,
    /// A decimal number (double, currency, percent).
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// An ISO 8601 date-time.
    DateTime,
    /// The id of another record.
    Reference,
}

/// One field of an sObject.
#[derive(Clone, Debug)]
pub struct Field {
    /// API name, e.g. `Shopify_Company_Id__c`.
    pub name: &'static str,
    /// Value type.
    pub kind: FieldKind,
    /// Maximum length of text values.
    pub length: Option<usize>,
    /// Must be set on create (`REQUIRED_FIELD_MISSING`).
    pub required: bool,
    /// An external id: unique, usable for upserts and relationship references.
    pub external_id: bool,
    /// Set by the system only (`INVALID_FIELD_FOR_INSERT_UPDATE` when written).
    pub read_only: bool,
    /// Set on create only: an update that names it fails (`INVALID_FIELD_FOR_INSERT_UPDATE`),
    /// the upsert of an existing record included (an order item's order and price book entry).
    pub create_only: bool,
    /// For lookups: the target object and the relationship name (`AccountId` → `Account`).
    pub reference: Option<(&'static str, &'static str)>,
}

/// One sObject type.
#[derive(Clone, Debug)]
pub struct SObjectType {
    /// API name, e.g. `Account`.
    pub name: &'static str,
    /// The 3-character id prefix.
    pub key_prefix: &'static str,
    /// Its fields, `Id` and the audit fields included.
    pub fields: Vec<Field>,
    /// Whether Change Data Capture is enabled for it.
    pub change_events: bool,
    /// Lookups whose parent record is locked while a child is written (master-detail and
    /// the lookups Salesforce locks for integrity: `UNABLE_TO_LOCK_ROW`).
    pub locking_parents: &'static [&'static str],
}

impl SObjectType {
    /// The field named `name` (case-insensitive, like the API).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The lookup field whose relationship is named `rel` (`Account` → `AccountId`).
    pub fn relationship(&self, rel: &str) -> Option<&Field> {
        self.fields.iter().find(|f| {
            f.reference
                .is_some_and(|(_, r)| r.eq_ignore_ascii_case(rel))
        })
    }
}

fn f(name: &'static str, kind: FieldKind) -> Field {
    Field {
        name,
        kind,
        length: None,
        required: false,
        external_id: false,
        read_only: false,
        create_only: false,
        reference: None,
    }
}

fn text(name: &'static str, length: usize) -> Field {
    Field {
        length: Some(length),
        ..f(name, FieldKind::Text)
    }
}

fn required(field: Field) -> Field {
    Field {
        required: true,
        ..field
    }
}

fn external_id(name: &'static str) -> Field {
    Field {
        external_id: true,
        ..text(name, 255)
    }
}

fn read_only(field: Field) -> Field {
    Field {
        read_only: true,
        ..field
    }
}

fn create_only(field: Field) -> Field {
    Field {
        create_only: true,
        ..field
    }
}

fn lookup(name: &'static str, target: &'static str, rel: &'static str) -> Field {
    Field {
        reference: Some((target, rel)),
        ..f(name, FieldKind::Reference)
    }
}

fn system_fields() -> Vec<Field> {
    vec![
        read_only(f("Id", FieldKind::Id)),
        read_only(f("CreatedDate", FieldKind::DateTime)),
        read_only(lookup("CreatedById", "User", "CreatedBy")),
        read_only(f("LastModifiedDate", FieldKind::DateTime)),
        read_only(lookup("LastModifiedById", "User", "LastModifiedBy")),
        read_only(f("SystemModstamp", FieldKind::DateTime)),
        read_only(f("IsDeleted", FieldKind::Boolean)),
    ]
}

fn object(
    name: &'static str,
    key_prefix: &'static str,
    change_events: bool,
    locking_parents: &'static [&'static str],
    fields: Vec<Field>,
) -> SObjectType {
    let mut all = system_fields();
    all.extend(fields);
    SObjectType {
        name,
        key_prefix,
        fields: all,
        change_events,
        locking_parents,
    }
}

/// The objects of the simulated org.
pub fn standard_objects() -> Vec<SObjectType> {
    use FieldKind::*;
    vec![
        object(
            "Account",
            "001",
            true,
            &["ParentId"],
            vec![
                required(text("Name", 255)),
                text("AccountNumber", 40),
                Field {
                    length: Some(255),
                    ..f("Website", Url)
                },
                text("Phone", 40),
                text("Industry", 255),
                text("Rating", 255),
                text("BillingStreet", 255),
                text("BillingCity", 40),
                text("BillingState", 80),
                text("BillingPostalCode", 20),
                text("BillingCountry", 80),
                text("ShippingCity", 40),
                text("ShippingState", 80),
                text("ShippingPostalCode", 20),
                text("ShippingCountry", 80),
                text("Description", 32000),
                lookup("ParentId", "Account", "Parent"),
                lookup("OwnerId", "User", "Owner"),
                external_id("Shopify_Company_Id__c"),
                Field {
                    length: Some(50),
                    ..external_id("Tax_Id__c")
                },
                // Match keys the sync writes (normalised name, business domain) so that
                // candidates are found by SOQL; a managed package would install them.
                text("Wholesail_Name_Key__c", 255),
                text("Wholesail_Domain__c", 255),
            ],
        ),
        object(
            "Contact",
            "003",
            true,
            &["AccountId"],
            vec![
                text("FirstName", 40),
                required(text("LastName", 80)),
                Field {
                    length: Some(80),
                    ..f("Email", Email)
                },
                text("Phone", 40),
                text("Title", 128),
                lookup("AccountId", "Account", "Account"),
                lookup("OwnerId", "User", "Owner"),
                external_id("Shopify_Customer_Id__c"),
            ],
        ),
        object(
            "Product2",
            "01t",
            false,
            &[],
            vec![
                required(text("Name", 255)),
                text("ProductCode", 255),
                text("StockKeepingUnit", 180),
                text("Family", 255),
                text("Description", 4000),
                f("IsActive", Boolean),
                external_id("Shopify_Variant_Id__c"),
            ],
        ),
        object(
            "Pricebook2",
            "01s",
            false,
            &[],
            vec![
                required(text("Name", 255)),
                text("Description", 255),
                f("IsActive", Boolean),
                read_only(f("IsStandard", Boolean)),
            ],
        ),
        object(
            "PricebookEntry",
            "01u",
            false,
            &[],
            vec![
                create_only(required(lookup("Pricebook2Id", "Pricebook2", "Pricebook2"))),
                create_only(required(lookup("Product2Id", "Product2", "Product2"))),
                required(f("UnitPrice", Number)),
                f("IsActive", Boolean),
                f("UseStandardPrice", Boolean),
                // Wholesail's package installs it: price book entries are upserted, and order
                // items reference them, by the Shopify variant.
                external_id("Shopify_Variant_Id__c"),
            ],
        ),
        object(
            "Order",
            "801",
            false,
            &["AccountId"],
            vec![
                required(lookup("AccountId", "Account", "Account")),
                required(f("EffectiveDate", Date)),
                required(text("Status", 255)),
                lookup("Pricebook2Id", "Pricebook2", "Pricebook2"),
                text("PoNumber", 80),
                text("Description", 32000),
                lookup("OwnerId", "User", "Owner"),
                external_id("Shopify_Order_Id__c"),
                // Wholesail's package: the order's payment state and total as Shopify reports
                // them (refunds and cancellations included; `TotalAmount` is a roll-up of the
                // items and cannot be written).
                text("Shopify_Financial_Status__c", 40),
                f("Shopify_Total__c", Number),
            ],
        ),
        object(
            "OrderItem",
            "802",
            false,
            &["OrderId"],
            vec![
                create_only(required(lookup("OrderId", "Order", "Order"))),
                create_only(required(lookup(
                    "PricebookEntryId",
                    "PricebookEntry",
                    "PricebookEntry",
                ))),
                lookup("Product2Id", "Product2", "Product2"),
                required(f("Quantity", Number)),
                required(f("UnitPrice", Number)),
                text("Description", 255),
                external_id("Shopify_Line_Id__c"),
            ],
        ),
        object(
            "Quote",
            "0Q0",
            true,
            &["AccountId"],
            vec![
                required(text("Name", 255)),
                lookup("AccountId", "Account", "Account"),
                lookup("ContactId", "Contact", "Contact"),
                lookup("Pricebook2Id", "Pricebook2", "Pricebook2"),
                text("Status", 255),
                f("ExpirationDate", Date),
                text("Description", 32000),
                lookup("OwnerId", "User", "Owner"),
                // Wholesail's package installs them: the buyer's company location (when the
                // Account's company has several), and what quote to cash writes back.
                text("Shopify_Location_Id__c", 255),
                text("Shopify_Draft_Status__c", 255),
                text("Shopify_Invoice_Urls__c", 32000),
            ],
        ),
        object(
            "QuoteLineItem",
            "0QL",
            true,
            &["QuoteId"],
            vec![
                required(lookup("QuoteId", "Quote", "Quote")),
                required(lookup(
                    "PricebookEntryId",
                    "PricebookEntry",
                    "PricebookEntry",
                )),
                lookup("Product2Id", "Product2", "Product2"),
                required(f("Quantity", Number)),
                required(f("UnitPrice", Number)),
                f("Discount", Number),
                text("Description", 255),
            ],
        ),
    ]
}
