//! Shopify's B2B catalogs, price lists and quantity rules against the price matrix (being
//! built).
