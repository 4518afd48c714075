//! One buyer's (company location's) rules, as origin computes them and the Function decodes
//! them. Built only through constructors that check the invariants, so validators never
//! re-check them.

use crate::money::Money;

/// The constraints on one product variant for one buyer.
///
/// Origin has already resolved product-level rules, the buyer's warehouses and regions, the
/// quota consumed this period and the stock of the warehouses that serve this buyer into these
/// numbers: checkout does a lookup and a few comparisons, nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantRule {
    /// The numeric product variant id.
    pub variant_id: u64,
    /// Case pack / increment: each line's quantity must be a multiple of it (1 = any).
    pub increment: u32,
    /// Minimum quantity per line (0 = none).
    pub min: u32,
    /// Maximum quantity per line.
    pub max: Option<u32>,
    /// Quota left in the current period, across all lines of the variant.
    pub quota_remaining: Option<u32>,
    /// Units available from the warehouses that serve this buyer, across all lines.
    pub stock: Option<u32>,
    /// Whether a warehouse allowed for this SKU serves the buyer's region.
    pub eligible: bool,
}

impl VariantRule {
    /// A rule that constrains nothing; set fields on it, then give it to [`BuyerRules::new`].
    pub fn unconstrained(variant_id: u64) -> Self {
        Self {
            variant_id,
            increment: 1,
            min: 0,
            max: None,
            quota_remaining: None,
            stock: None,
            eligible: true,
        }
    }

    /// Whether the rule has no effect (such rules are not worth a byte of the payload).
    pub fn is_unconstrained(&self) -> bool {
        *self == Self::unconstrained(self.variant_id)
    }
}

/// The minimum value of an order, compared with the cart subtotal.
pub type OrderMinimum = Money;

/// Why a set of rules was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// The same variant has two rules.
    #[error("variant {0} has more than one rule")]
    DuplicateVariant(u64),
    /// An increment of zero can never be met.
    #[error("variant {0}: the increment (case pack) must be at least 1")]
    ZeroIncrement(u64),
    /// The minimum exceeds the maximum.
    #[error("variant {variant}: minimum {min} is above maximum {max}")]
    MinAboveMax {
        /// The variant.
        variant: u64,
        /// Its minimum per line.
        min: u32,
        /// Its maximum per line.
        max: u32,
    },
}

/// Everything checkout enforces for one buyer: the variant rules sorted by variant id, and the
/// order minimum.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuyerRules {
    variants: Vec<VariantRule>,
    order_minimum: Option<OrderMinimum>,
}

impl BuyerRules {
    /// Checks and sorts the rules. Unconstrained rules are dropped (a variant without a rule
    /// is unconstrained anyway).
    pub fn new(
        mut variants: Vec<VariantRule>,
        order_minimum: Option<OrderMinimum>,
    ) -> Result<Self, RulesError> {
        for v in &variants {
            if v.increment == 0 {
                return Err(RulesError::ZeroIncrement(v.variant_id));
            }
            if let Some(max) = v.max.filter(|&max| v.min > max) {
                return Err(RulesError::MinAboveMax {
                    variant: v.variant_id,
                    min: v.min,
                    max,
                });
            }
        }
        variants.sort_unstable_by_key(|v| v.variant_id);
        if let Some(w) = variants
            .windows(2)
            .find(|w| w[0].variant_id == w[1].variant_id)
        {
            return Err(RulesError::DuplicateVariant(w[0].variant_id));
        }
        variants.retain(|v| !v.is_unconstrained());
        Ok(Self {
            variants,
            order_minimum,
        })
    }

    /// Rules the payload decoder has already checked (ids strictly increasing, increments
    /// non-zero, minimum not above maximum).
    pub(crate) fn from_decoded(
        variants: Vec<VariantRule>,
        order_minimum: Option<OrderMinimum>,
    ) -> Self {
        Self {
            variants,
            order_minimum,
        }
    }

    /// The variant rules, sorted by variant id.
    pub fn variants(&self) -> &[VariantRule] {
        &self.variants
    }

    /// The order minimum, if any.
    pub fn order_minimum(&self) -> Option<OrderMinimum> {
        self.order_minimum
    }

    /// The index of `variant_id`'s rule in [`Self::variants`] (binary search).
    pub fn position(&self, variant_id: u64) -> Option<usize> {
        self.variants
            .binary_search_by_key(&variant_id, |v| v.variant_id)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_sorted_and_unconstrained_ones_dropped() {
        let mut a = VariantRule::unconstrained(30);
        a.increment = 6;
        let b = VariantRule::unconstrained(20);
        let mut c = VariantRule::unconstrained(10);
        c.eligible = false;
        let rules = BuyerRules::new(vec![a, b, c], None).unwrap();
        let ids: Vec<u64> = rules.variants().iter().map(|v| v.variant_id).collect();
        assert_eq!(ids, [10, 30]);
        assert_eq!(rules.position(30), Some(1));
        assert_eq!(rules.position(20), None);
    }

    #[test]
    fn impossible_rules_are_refused_with_the_variant_named() {
        let mut zero = VariantRule::unconstrained(7);
        zero.increment = 0;
        assert_eq!(
            BuyerRules::new(vec![zero], None),
            Err(RulesError::ZeroIncrement(7))
        );
        let mut inverted = VariantRule::unconstrained(8);
        inverted.min = 10;
        inverted.max = Some(5);
        assert_eq!(
            BuyerRules::new(vec![inverted], None)
                .unwrap_err()
                .to_string(),
            "variant 8: minimum 10 is above maximum 5"
        );
        let dup = VariantRule::unconstrained(9);
        assert_eq!(
            BuyerRules::new(vec![dup, dup], None),
            Err(RulesError::DuplicateVariant(9))
        );
    }
}
