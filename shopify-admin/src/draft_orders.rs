//! Draft orders: create one (at most 499 lines, one `appliedDiscount` per line), find drafts
//! again by tag — the lookup that makes a retried creation idempotent — and email a draft's
//! invoice (checkout link) to the buyer.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;

use crate::{
    check_user_errors, AdminClient, AdminError, Money, MoneyBag, Request, Retry, UserError,
};

/// Most line items one draft order accepts (API 2025-07 and later).
pub const MAX_LINES: usize = 499;

/// A line's or the order's custom discount. Amounts stay in integer cents here; Shopify's
/// `Float` input is produced only when serialising.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppliedDiscount {
    /// A fixed amount off each unit.
    FixedAmount {
        /// Cents off per unit.
        cents_per_unit: u64,
        /// Title shown to the buyer.
        title: Option<String>,
    },
    /// A percentage of the line's (or order's) total.
    Percentage {
        /// Hundredths of a percent: 1250 is 12.5 %.
        hundredths: u32,
        /// Title shown to the buyer.
        title: Option<String>,
    },
}

impl Serialize for AppliedDiscount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (value, kind, title) = match self {
            AppliedDiscount::FixedAmount {
                cents_per_unit,
                title,
            } => (*cents_per_unit as f64 / 100.0, "FIXED_AMOUNT", title),
            AppliedDiscount::Percentage { hundredths, title } => {
                (f64::from(*hundredths) / 100.0, "PERCENTAGE", title)
            }
        };
        json!({"value": value, "valueType": kind, "title": title}).serialize(s)
    }
}

/// `DraftOrderLineItemInput`: a catalog variant, or a custom line with a title and price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftOrderLineItemInput {
    /// The variant's gid (its catalog price is the list price).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
    /// Quantity.
    pub quantity: u32,
    /// Title of a custom line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Unit price of a custom line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_unit_price_with_currency: Option<Money>,
    /// The line's discount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_discount: Option<AppliedDiscount>,
}

/// `MetafieldInput` of a draft order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetafieldInput {
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `ShippingLineInput`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShippingLineInput {
    /// Title.
    pub title: String,
    /// Price.
    pub price_with_currency: Money,
}

/// `DraftOrderInput` (the fields Wholesail uses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftOrderInput {
    /// Line items (at most [`MAX_LINES`]).
    pub line_items: Vec<DraftOrderLineItemInput>,
    /// Tags (used to find the draft again).
    pub tags: Vec<String>,
    /// Note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Metafields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metafields: Vec<MetafieldInput>,
    /// Shipping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_line: Option<ShippingLineInput>,
    /// Order-level discount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_discount: Option<AppliedDiscount>,
    /// B2B purchasing entity (`{"purchasingCompany": {...}}`), passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchasing_entity: Option<serde_json::Value>,
}

/// A created or found draft order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftOrder {
    /// gid.
    pub id: String,
    /// `#D<n>`.
    pub name: String,
    /// Checkout link for the buyer.
    pub invoice_url: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Lines after their discounts, minus the order discount.
    pub subtotal_price_set: MoneyBag,
    /// All discounts.
    pub total_discounts_set: MoneyBag,
    /// What the buyer pays.
    pub total_price_set: MoneyBag,
}

const FIELDS: &str = "id name invoiceUrl tags subtotalPriceSet { shopMoney { amount currencyCode } } totalDiscountsSet { shopMoney { amount currencyCode } } totalPriceSet { shopMoney { amount currencyCode } }";

/// One page of drafts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DraftOrderPage {
    /// The drafts.
    pub drafts: Vec<DraftOrder>,
    /// Cursor of the next page, if any.
    pub next: Option<String>,
}

impl AdminClient {
    /// Creates a draft order. Not retried when the outcome is unknown
    /// ([`AdminError::OutcomeUnknown`]): find it by tag before creating it again.
    pub async fn draft_order_create(
        &self,
        input: &DraftOrderInput,
    ) -> Result<DraftOrder, AdminError> {
        self.draft_mutation(
            "DraftOrderCreate",
            "draftOrderCreate",
            "$input: DraftOrderInput!",
            "input: $input",
            json!({"input": input}),
        )
        .await
    }

    /// Emails the draft's invoice (checkout link) to the buyer on file
    /// (`draftOrderInvoiceSend`). Sends an email, so it is not retried when the outcome is
    /// unknown ([`AdminError::OutcomeUnknown`]).
    pub async fn draft_order_invoice_send(&self, id: &str) -> Result<DraftOrder, AdminError> {
        self.draft_mutation(
            "DraftOrderInvoiceSend",
            "draftOrderInvoiceSend",
            "$id: ID!",
            "id: $id",
            json!({"id": id}),
        )
        .await
    }

    /// A mutation `field(args)` answering `{draftOrder, userErrors}` (10 points), sent once
    /// when its outcome is unknown.
    async fn draft_mutation(
        &self,
        name: &'static str,
        field: &str,
        params: &str,
        args: &str,
        variables: serde_json::Value,
    ) -> Result<DraftOrder, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload {
            draft_order: Option<DraftOrder>,
            user_errors: Vec<UserError>,
        }
        let text = format!(
            "mutation {name}({params}) {{ {field}({args}) {{ draftOrder {{ {FIELDS} }} userErrors {{ field message }} }} }}"
        );
        let r = self
            .execute::<std::collections::HashMap<String, Payload>>(&Request {
                name,
                query: &text,
                variables,
                estimated_cost: 10,
                retry: Retry::IfNotExecuted,
            })
            .await?;
        let p = r
            .data
            .into_values()
            .next()
            .ok_or_else(|| AdminError::Decode(format!("{field} returned no payload")))?;
        check_user_errors(p.user_errors)?;
        p.draft_order
            .ok_or_else(|| AdminError::Decode(format!("{field} returned no draft")))
    }

    /// Up to `first` (≤ 250) drafts tagged `tag`, after the cursor `after`.
    pub async fn draft_orders_by_tag(
        &self,
        tag: &str,
        first: u32,
        after: Option<&str>,
    ) -> Result<DraftOrderPage, AdminError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PageInfo {
            has_next_page: bool,
            end_cursor: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Conn {
            nodes: Vec<DraftOrder>,
            page_info: PageInfo,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            draft_orders: Conn,
        }
        let text = format!(
            "query DraftOrdersByTag($first: Int!, $after: String, $query: String!) {{ draftOrders(first: $first, after: $after, query: $query) {{ nodes {{ {FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        );
        let first = first.clamp(1, 250);
        let r = self
            .execute::<Data>(&Request {
                name: "DraftOrdersByTag",
                query: &text,
                variables: json!({"first": first, "after": after, "query": format!("tag:'{tag}'")}),
                estimated_cost: 2 + first,
                retry: Retry::Always,
            })
            .await?;
        let c = r.data.draft_orders;
        Ok(DraftOrderPage {
            next: c.page_info.end_cursor.filter(|_| c.page_info.has_next_page),
            drafts: c.nodes,
        })
    }
}
