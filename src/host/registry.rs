//! Registering host functions with their documentation in one step.
//!
//! Every host function is defined with [`host_fn!`](crate::host_fn) (see src/host/binding.rs),
//! which derives its parameter names and types from the definition and registers it through
//! [`Registrar::add`]; that stores the parameters, return type, doc text and capability in
//! Rhai's own function metadata. `mtn fns`, `mtn docs` and `mtn defs` all read that metadata
//! back from the engine, so the reference cannot drift from the code.

use rhai::{Engine, FuncRegistration, RhaiNativeFunc, Variant};

use crate::ctx::Ctx;

pub struct Registrar<'a> {
    pub engine: &'a mut Engine,
    pub ctx: Ctx,
    category: &'static str,
}

/// The marker line that carries a function's capability inside its doc comments.
pub const CATEGORY_PREFIX: &str = "/** category: ";

impl<'a> Registrar<'a> {
    pub fn new(engine: &'a mut Engine, ctx: Ctx) -> Self {
        Registrar {
            engine,
            ctx,
            category: "core",
        }
    }

    /// Set the capability (docs page) the following functions belong to.
    pub fn category(&mut self, category: &'static str) {
        self.category = category;
    }

    /// Register a host function; called by [`host_fn!`](crate::host_fn), not by hand.
    ///
    /// `params` are `(name, type)` pairs (a type of `""` is Rhai's calling context, not shown),
    /// `ret` the return type, `doc` Markdown whose first line is the one-line summary; an
    /// example belongs in a fenced ```rhai block.
    /// Host functions are volatile: the optimizer must never evaluate them at compile time.
    pub fn add<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &mut self,
        name: &str,
        params: &[(&str, &str)],
        ret: &str,
        doc: &str,
        func: FUNC,
    ) where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        let mut info: Vec<String> = params
            .iter()
            .filter(|(_, ty)| !ty.is_empty())
            .map(|(name, ty)| format!("{name}: {ty}"))
            .collect();
        info.push(ret.to_string());
        let doc_comment = doc
            .trim_matches('\n')
            .lines()
            .map(|l| format!("/// {l}").trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let category = format!("{CATEGORY_PREFIX}{} */", self.category);
        FuncRegistration::new(name)
            .with_volatility(true)
            .with_purity(true)
            .with_params_info(info)
            .with_comments([doc_comment, category])
            .register_into_engine(self.engine, func);
    }
}

/// One host function as the reference shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FnInfo {
    pub name: String,
    pub category: String,
    pub params: Vec<String>,
    pub returns: String,
    pub signature: String,
    pub summary: String,
    pub doc: String,
}

/// Read every host function (not Rhai's standard library) back from the engine's metadata.
pub fn host_functions(engine: &Engine) -> Vec<FnInfo> {
    let mut out: Vec<FnInfo> = engine.collect_fn_metadata(
        None,
        |info| {
            let meta = info.metadata;
            let comments: Vec<String> = meta.comments.iter().map(|c| c.to_string()).collect();
            let category = comments
                .iter()
                .find_map(|c| c.strip_prefix(CATEGORY_PREFIX))
                .map(|c| c.trim_end_matches("*/").trim().to_string())?;
            let doc = comments
                .iter()
                .filter(|c| c.starts_with("///"))
                .flat_map(|c| c.lines())
                .map(|l| {
                    l.strip_prefix("/// ")
                        .or_else(|| l.strip_prefix("///"))
                        .unwrap_or(l)
                })
                .collect::<Vec<_>>()
                .join("\n");
            let params: Vec<String> = meta.params_info.iter().map(|p| p.to_string()).collect();
            let returns = meta.return_type.to_string();
            let signature = format!("{}({}) -> {}", meta.name, params.join(", "), returns);
            let summary = doc.lines().next().unwrap_or_default().to_string();
            Some(FnInfo {
                name: meta.name.to_string(),
                category,
                params,
                returns,
                signature,
                summary,
                doc,
            })
        },
        false,
    );
    out.sort_by(|a, b| {
        (
            a.category.as_str(),
            a.name.as_str(),
            a.params.len(),
            &a.signature,
        )
            .cmp(&(
                b.category.as_str(),
                b.name.as_str(),
                b.params.len(),
                &b.signature,
            ))
    });
    out
}
