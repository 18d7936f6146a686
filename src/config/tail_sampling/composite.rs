//! Compound policies: `and`, `drop` and `not` over simple sub-policies, and `composite`, which
//! shares a rate among its sub-policies.

use std::collections::HashSet;

use serde::Deserialize;

use super::super::component::{in_range, Ctx};
use super::super::error::ConfigError;
use super::super::scalar::UInt;
use super::super::values::KeyPath;
use super::policy::{check_policies, check_policy, required_text, Level, Policy, RawPolicy};

/// `composite`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositePolicy {
    /// The span rate shared by the sub-policies, across the gateway; above 0.
    pub max_total_spans_per_second: u64,
    /// Sub-policy names in evaluation order; each names a sub-policy once.
    pub policy_order: Vec<String>,
    /// `composite_sub_policy`: the sub-policies.
    pub sub_policies: Vec<Policy>,
    /// Shares of `max_total_spans_per_second` by sub-policy; at most 100 % in all.
    pub rate_allocation: Vec<RateAllocation>,
}

/// One `rate_allocation` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateAllocation {
    /// A sub-policy name.
    pub policy: String,
    /// Its share of the total rate, 0 to 100.
    pub percent: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAnd {
    pub(super) and_sub_policy: Option<Vec<RawPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNot {
    pub(super) not_sub_policy: Option<Box<RawPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDrop {
    pub(super) drop_sub_policy: Option<Vec<RawPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawComposite {
    pub(super) max_total_spans_per_second: Option<UInt>,
    pub(super) policy_order: Option<Vec<String>>,
    pub(super) composite_sub_policy: Option<Vec<RawPolicy>>,
    pub(super) rate_allocation: Option<Vec<RawRateAllocation>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRateAllocation {
    pub(super) policy: Option<String>,
    pub(super) percent: Option<UInt>,
}

pub(super) fn check_composite(
    raw: RawComposite,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<CompositePolicy, ConfigError> {
    let Some(UInt(total)) = raw.max_total_spans_per_second else {
        return Err(ctx.missing(path, "max_total_spans_per_second"));
    };
    let max_total_spans_per_second = in_range(
        ctx,
        &path.key("max_total_spans_per_second"),
        total,
        1,
        u64::MAX,
    )?;
    let subs = raw
        .composite_sub_policy
        .ok_or_else(|| ctx.missing(path, "composite_sub_policy"))?;
    let sub_policies = check_policies(
        subs,
        &path.key("composite_sub_policy"),
        Level::CompositeSub,
        ctx,
    )?;
    let names = SubPolicyNames(sub_policies.iter().map(|p| p.name.as_str()).collect());
    let policy_order = raw
        .policy_order
        .ok_or_else(|| ctx.missing(path, "policy_order"))?;
    check_policy_order(&policy_order, &names, &path.key("policy_order"), ctx)?;
    let rate_allocation = check_rate_allocation(
        raw.rate_allocation.unwrap_or_default(),
        &names,
        &path.key("rate_allocation"),
        ctx,
    )?;
    Ok(CompositePolicy {
        max_total_spans_per_second,
        policy_order,
        sub_policies,
        rate_allocation,
    })
}

/// The names of a composite policy's sub-policies, which its other keys refer to.
struct SubPolicyNames<'a>(HashSet<&'a str>);

impl SubPolicyNames<'_> {
    /// `name`, written at `at`, names a sub-policy.
    fn known(&self, ctx: &Ctx<'_>, at: &KeyPath, name: &str) -> Result<(), ConfigError> {
        if self.0.contains(name) {
            Ok(())
        } else {
            Err(ctx.invalid(
                at,
                format!("`{name}` is not the name of a composite_sub_policy"),
            ))
        }
    }
}

/// `policy_order`: not empty, each entry a sub-policy, none twice.
fn check_policy_order(
    policy_order: &[String],
    names: &SubPolicyNames<'_>,
    order_path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    // The contrib processor evaluates sub-policies in `composite_sub_policy` order and does not
    // appear to read `policy_order`; tailgate holds it to naming each sub-policy at most once so
    // that the order it states is unambiguous.
    if policy_order.is_empty() {
        return Err(ctx.invalid(order_path, "needs at least one sub-policy name"));
    }
    let mut seen = HashSet::new();
    for (i, name) in policy_order.iter().enumerate() {
        names.known(ctx, &order_path.index(i), name)?;
        if !seen.insert(name.as_str()) {
            return Err(ctx.invalid(&order_path.index(i), format!("`{name}` is listed twice")));
        }
    }
    Ok(())
}

/// `rate_allocation`: each entry a sub-policy at most once, the percentages at most 100 in all.
fn check_rate_allocation(
    raw: Vec<RawRateAllocation>,
    names: &SubPolicyNames<'_>,
    alloc_path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<RateAllocation>, ConfigError> {
    let mut rate_allocation = Vec::new();
    let mut total_percent = 0u64;
    let mut allocated = HashSet::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let entry_path = alloc_path.index(i);
        let policy = required_text(ctx, &entry_path, "policy", entry.policy)?;
        names.known(ctx, &entry_path.key("policy"), &policy)?;
        if !allocated.insert(policy.clone()) {
            return Err(ctx.invalid(
                &entry_path.key("policy"),
                format!("`{policy}` has two rate allocations"),
            ));
        }
        let Some(UInt(percent)) = entry.percent else {
            return Err(ctx.missing(&entry_path, "percent"));
        };
        let percent = in_range(ctx, &entry_path.key("percent"), percent, 0, 100)?;
        total_percent += percent;
        if total_percent > 100 {
            return Err(ctx.invalid(
                &entry_path.key("percent"),
                format!(
                    "brings the allocations to {total_percent} %; they may total at most 100 %"
                ),
            ));
        }
        rate_allocation.push(RateAllocation {
            policy,
            percent: percent as u32,
        });
    }
    Ok(rate_allocation)
}

pub(super) fn check_and(
    raw: RawAnd,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<Policy>, ConfigError> {
    let subs = raw
        .and_sub_policy
        .ok_or_else(|| ctx.missing(path, "and_sub_policy"))?;
    check_policies(subs, &path.key("and_sub_policy"), Level::AndSub, ctx)
}

pub(super) fn check_drop(
    raw: RawDrop,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Vec<Policy>, ConfigError> {
    let subs = raw
        .drop_sub_policy
        .ok_or_else(|| ctx.missing(path, "drop_sub_policy"))?;
    check_policies(subs, &path.key("drop_sub_policy"), Level::AndSub, ctx)
}

pub(super) fn check_not(raw: RawNot, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Policy, ConfigError> {
    let sub = raw
        .not_sub_policy
        .ok_or_else(|| ctx.missing(path, "not_sub_policy"))?;
    check_policy(*sub, &path.key("not_sub_policy"), Level::Simple, ctx)
}
