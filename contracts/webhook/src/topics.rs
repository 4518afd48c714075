//! Every webhook topic Wholesail knows: the one list. The allowlists (what the stripper keeps),
//! the delete shapes and origin's handlers all start from [`KnownTopic`], so adding a topic is
//! one line here plus its handler, which origin's exhaustive `match` asks for.
//!
//! A topic outside this list is still accepted and stored as sent (`Stripping::UnknownTopic`),
//! but applied by nothing.

/// What a topic's payload describes: it picks the allowlist and origin's handler module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// The whole order (`orders/*` but the delete).
    Order,
    /// A product with its variants.
    Product,
    /// An inventory level (item × location).
    InventoryLevel,
    /// A customer.
    Customer,
    /// A B2B company.
    Company,
    /// A B2B company location.
    CompanyLocation,
    /// A bulk operation that finished.
    BulkOperation,
    /// The shop itself (`app/uninstalled`, `shop/update`).
    Shop,
    /// GDPR compliance requests (`customers/data_request`, `customers/redact`, `shop/redact`).
    Compliance,
    /// Deletes Wholesail checks the shape of but keeps no table for.
    Untracked,
}

macro_rules! known_topics {
    ($($variant:ident = $name:literal, $family:ident;)*) => {
        /// A webhook topic Wholesail knows (see the module documentation).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum KnownTopic {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl KnownTopic {
            /// Every known topic, in the order of the list.
            pub const ALL: &'static [KnownTopic] = &[$(KnownTopic::$variant,)*];

            /// The topic as Shopify names it (`orders/create`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(KnownTopic::$variant => $name,)*
                }
            }

            /// What its payload describes.
            pub const fn family(self) -> Family {
                match self {
                    $(KnownTopic::$variant => Family::$family,)*
                }
            }
        }
    };
}

known_topics! {
    OrdersCreate = "orders/create", Order;
    OrdersUpdated = "orders/updated", Order;
    OrdersPaid = "orders/paid", Order;
    OrdersCancelled = "orders/cancelled", Order;
    OrdersFulfilled = "orders/fulfilled", Order;
    OrdersPartiallyFulfilled = "orders/partially_fulfilled", Order;
    OrdersDelete = "orders/delete", Order;
    ProductsCreate = "products/create", Product;
    ProductsUpdate = "products/update", Product;
    ProductsDelete = "products/delete", Product;
    InventoryLevelsUpdate = "inventory_levels/update", InventoryLevel;
    InventoryLevelsConnect = "inventory_levels/connect", InventoryLevel;
    InventoryLevelsDisconnect = "inventory_levels/disconnect", InventoryLevel;
    CustomersCreate = "customers/create", Customer;
    CustomersUpdate = "customers/update", Customer;
    CustomersEnable = "customers/enable", Customer;
    CustomersDisable = "customers/disable", Customer;
    CustomersDelete = "customers/delete", Customer;
    CompaniesCreate = "companies/create", Company;
    CompaniesUpdate = "companies/update", Company;
    CompaniesDelete = "companies/delete", Company;
    CompanyLocationsCreate = "company_locations/create", CompanyLocation;
    CompanyLocationsUpdate = "company_locations/update", CompanyLocation;
    CompanyLocationsDelete = "company_locations/delete", CompanyLocation;
    BulkOperationsFinish = "bulk_operations/finish", BulkOperation;
    AppUninstalled = "app/uninstalled", Shop;
    ShopUpdate = "shop/update", Shop;
    CustomersDataRequest = "customers/data_request", Compliance;
    CustomersRedact = "customers/redact", Compliance;
    ShopRedact = "shop/redact", Compliance;
    CollectionsDelete = "collections/delete", Untracked;
    LocationsDelete = "locations/delete", Untracked;
    InventoryItemsDelete = "inventory_items/delete", Untracked;
}

impl KnownTopic {
    /// The known topic named `name`, if any.
    pub fn parse(name: &str) -> Option<KnownTopic> {
        KnownTopic::ALL.iter().copied().find(|t| t.as_str() == name)
    }

    /// The known topics of `family`, as Shopify names them.
    pub fn names_of(family: Family) -> impl Iterator<Item = &'static str> {
        KnownTopic::ALL
            .iter()
            .filter(move |t| t.family() == family)
            .map(|t| t.as_str())
    }
}

impl std::fmt::Display for KnownTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_parses_back_from_its_name_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for &t in KnownTopic::ALL {
            assert_eq!(KnownTopic::parse(t.as_str()), Some(t));
            assert!(names.insert(t.as_str()), "{t} twice");
            assert!(
                crate::Topic::parse(t.as_str()).is_ok(),
                "{t} is not a valid topic"
            );
        }
        assert_eq!(KnownTopic::parse("carts/update"), None);
    }

    #[test]
    fn families_group_the_topics() {
        let customers: Vec<_> = KnownTopic::names_of(Family::Customer).collect();
        assert_eq!(
            customers,
            [
                "customers/create",
                "customers/update",
                "customers/enable",
                "customers/disable",
                "customers/delete"
            ]
        );
        assert_eq!(KnownTopic::ShopRedact.family(), Family::Compliance);
    }
}
