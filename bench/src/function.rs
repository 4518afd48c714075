//! The Shopify Function's real wasm run in wasmtime, linked to the real
//! `shopify_function_provider` compiled to wasm (the module Shopify's runner links Functions
//! against), with instructions counted by fuel. The `rules` benchmark measures with it; the
//! `run-function` binary runs the Function on one input (the demo).
//!
//! What the count includes: every wasm instruction executed in the Function module and in the
//! provider module from the call of the export `cart_validations_generate_run` to its return
//! (wasmtime fuel: 1 per operator; `nop`, `drop`, `block`, `loop`, `end`, `else` are free).
//! What it excludes: the glue between the two modules (Shopify's trampoline copies strings
//! between the memories with a few instructions per import call; here the host does it, and
//! the number of import calls is reported so it can be estimated), the provider's `initialize`
//! and `finalize` and the MessagePack encoding of the input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use wasmtime::{Caller, Config, Engine, Instance, Linker, Memory, Module, Store, TypedFunc};

/// Where `cargo xtask` builds the Function's wasm, under the target directory.
pub const FUNCTION_WASM: &str = "wasm32-unknown-unknown/function/wholesail-function.wasm";

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The provider's exports the glue calls.
struct Provider {
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    input_get: TypedFunc<(), i64>,
    get_val_len: TypedFunc<i64, i32>,
    get_utf8_str_addr: TypedFunc<i32, i32>,
    get_obj_prop: TypedFunc<(i64, i32, i32), i64>,
    get_interned_obj_prop: TypedFunc<(i64, i32), i64>,
    get_at_index: TypedFunc<(i64, i32), i64>,
    get_obj_key_at_index: TypedFunc<(i64, i32), i64>,
    new_bool: TypedFunc<i32, i32>,
    new_null: TypedFunc<(), i32>,
    new_i32: TypedFunc<i32, i32>,
    new_f64: TypedFunc<f64, i32>,
    new_utf8_str: TypedFunc<i32, i64>,
    new_interned_utf8_str: TypedFunc<i32, i32>,
    new_object: TypedFunc<i32, i32>,
    finish_object: TypedFunc<(), i32>,
    new_array: TypedFunc<i32, i32>,
    finish_array: TypedFunc<(), i32>,
    intern_utf8_str: TypedFunc<i32, i64>,
    log_new_utf8_str: TypedFunc<i32, i32>,
}

#[derive(Default)]
struct Host {
    provider: Option<Arc<Provider>>,
    guest_memory: Option<Memory>,
    import_calls: u64,
}

type Ctx<'a> = Caller<'a, Host>;

fn provider(c: &mut Ctx<'_>) -> Arc<Provider> {
    c.data_mut().import_calls += 1;
    c.data()
        .provider
        .clone()
        .expect("provider linked before the guest runs")
}

/// Copies `len` bytes from the guest's memory at `src` to the provider's at `dst`.
fn guest_to_provider(c: &mut Ctx<'_>, src: i32, dst: i32, len: i32) -> wasmtime::Result<()> {
    let g = c.data().guest_memory.expect("guest memory");
    let p = c.data().provider.as_ref().expect("provider").memory;
    copy(c, (g, "guest"), src, (p, "provider"), dst, len)
}

/// Copies `len` bytes from the provider's memory at `src` to the guest's at `dst`.
fn provider_to_guest(c: &mut Ctx<'_>, src: i32, dst: i32, len: i32) -> wasmtime::Result<()> {
    let g = c.data().guest_memory.expect("guest memory");
    let p = c.data().provider.as_ref().expect("provider").memory;
    copy(c, (p, "provider"), src, (g, "guest"), dst, len)
}

/// Copies `len` bytes between two instances' memories, bounds-checked on both sides.
fn copy(
    c: &mut Ctx<'_>,
    (from, from_name): (Memory, &str),
    src: i32,
    (to, to_name): (Memory, &str),
    dst: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let (src, dst, len) = (
        src as u32 as usize,
        dst as u32 as usize,
        len as u32 as usize,
    );
    let bytes = from
        .data(&*c)
        .get(src..src + len)
        .ok_or_else(|| wasmtime::format_err!("{from_name} read out of bounds"))?
        .to_vec();
    to.data_mut(&mut *c)
        .get_mut(dst..dst + len)
        .ok_or_else(|| wasmtime::format_err!("{to_name} write out of bounds"))?
        .copy_from_slice(&bytes);
    Ok(())
}

fn read_u32(mem: &[u8], at: usize) -> wasmtime::Result<u32> {
    let b = mem
        .get(at..at + 4)
        .ok_or_else(|| wasmtime::format_err!("read out of bounds"))?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The `shopify_function_v2` imports, as Shopify's trampoline provides them: calls into the
/// provider plus the memory copies between the two modules.
fn link_imports(linker: &mut Linker<Host>) -> Result<()> {
    const M: &str = "shopify_function_v2";
    linker.func_wrap(M, "shopify_function_input_get", |mut c: Ctx<'_>| {
        provider(&mut c).input_get.call(&mut c, ())
    })?;
    linker.func_wrap(
        M,
        "shopify_function_input_get_val_len",
        |mut c: Ctx<'_>, v: i64| provider(&mut c).get_val_len.call(&mut c, v),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_input_read_utf8_str",
        |mut c: Ctx<'_>, src: i32, out: i32, len: i32| {
            let addr = provider(&mut c).get_utf8_str_addr.call(&mut c, src)?;
            provider_to_guest(&mut c, addr, out, len)
        },
    )?;
    linker.func_wrap(
        M,
        "shopify_function_input_get_obj_prop",
        |mut c: Ctx<'_>, scope: i64, ptr: i32, len: i32| {
            let p = provider(&mut c);
            let dst = p.alloc.call(&mut c, len)?;
            guest_to_provider(&mut c, ptr, dst, len)?;
            p.get_obj_prop.call(&mut c, (scope, dst, len))
        },
    )?;
    linker.func_wrap(
        M,
        "shopify_function_input_get_interned_obj_prop",
        |mut c: Ctx<'_>, scope: i64, id: i32| {
            provider(&mut c)
                .get_interned_obj_prop
                .call(&mut c, (scope, id))
        },
    )?;
    linker.func_wrap(
        M,
        "shopify_function_input_get_at_index",
        |mut c: Ctx<'_>, scope: i64, i: i32| provider(&mut c).get_at_index.call(&mut c, (scope, i)),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_input_get_obj_key_at_index",
        |mut c: Ctx<'_>, scope: i64, i: i32| {
            provider(&mut c)
                .get_obj_key_at_index
                .call(&mut c, (scope, i))
        },
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_new_bool",
        |mut c: Ctx<'_>, b: i32| provider(&mut c).new_bool.call(&mut c, b),
    )?;
    linker.func_wrap(M, "shopify_function_output_new_null", |mut c: Ctx<'_>| {
        provider(&mut c).new_null.call(&mut c, ())
    })?;
    linker.func_wrap(
        M,
        "shopify_function_output_new_i32",
        |mut c: Ctx<'_>, n: i32| provider(&mut c).new_i32.call(&mut c, n),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_new_f64",
        |mut c: Ctx<'_>, n: f64| provider(&mut c).new_f64.call(&mut c, n),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_new_utf8_str",
        |mut c: Ctx<'_>, ptr: i32, len: i32| {
            let r = provider(&mut c).new_utf8_str.call(&mut c, len)?;
            let (result, dst) = ((r >> 32) as i32, r as i32);
            if result == 0 {
                guest_to_provider(&mut c, ptr, dst, len)?;
            }
            Ok(result)
        },
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_new_interned_utf8_str",
        |mut c: Ctx<'_>, id: i32| provider(&mut c).new_interned_utf8_str.call(&mut c, id),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_new_object",
        |mut c: Ctx<'_>, n: i32| provider(&mut c).new_object.call(&mut c, n),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_finish_object",
        |mut c: Ctx<'_>| provider(&mut c).finish_object.call(&mut c, ()),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_new_array",
        |mut c: Ctx<'_>, n: i32| provider(&mut c).new_array.call(&mut c, n),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_output_finish_array",
        |mut c: Ctx<'_>| provider(&mut c).finish_array.call(&mut c, ()),
    )?;
    linker.func_wrap(
        M,
        "shopify_function_intern_utf8_str",
        |mut c: Ctx<'_>, ptr: i32, len: i32| {
            let r = provider(&mut c).intern_utf8_str.call(&mut c, len)?;
            guest_to_provider(&mut c, ptr, r as i32, len)?;
            Ok((r >> 32) as i32)
        },
    )?;
    linker.func_wrap(
        M,
        "shopify_function_log_new_utf8_str",
        |mut c: Ctx<'_>, ptr: i32, len: i32| {
            let p = provider(&mut c);
            let at = p.log_new_utf8_str.call(&mut c, len)? as u32 as usize;
            let mem = p.memory.data(&c);
            let f = |i: usize| read_u32(mem, at + 4 * i);
            let (off, dst1, len1, dst2, len2) = (f(0)?, f(1)?, f(2)?, f(3)?, f(4)?);
            let src = ptr + off as i32;
            guest_to_provider(&mut c, src, dst1 as i32, len1 as i32)?;
            guest_to_provider(&mut c, src + len1 as i32, dst2 as i32, len2 as i32)
        },
    )?;
    Ok(())
}

/// One measured run.
pub struct Run {
    /// Instructions executed in the Function and the provider (wasmtime fuel).
    pub instructions: u64,
    /// Calls through the `shopify_function_v2` imports.
    pub import_calls: u64,
    /// The Function's output.
    pub output: Value,
    /// The input's size as MessagePack.
    pub input_bytes: usize,
}

/// The Function module linked to the provider, ready to run on inputs.
pub struct Harness {
    engine: Engine,
    guest: Module,
    provider: Module,
    linker: Linker<Host>,
}

impl Harness {
    /// Loads the Function (`guest`) and provider wasm modules.
    pub fn new(guest: &Path, provider: &Path) -> Result<Self> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config)?;
        let guest = Module::from_file(&engine, guest)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading {}", guest.display()))?;
        let provider = Module::from_file(&engine, provider)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading {}", provider.display()))?;
        if let Some(import) = provider.imports().next() {
            bail!(
                "the provider imports {}::{}, which this harness does not provide",
                import.module(),
                import.name()
            );
        }
        let mut linker = Linker::new(&engine);
        link_imports(&mut linker)?;
        Ok(Self {
            engine,
            guest,
            provider,
            linker,
        })
    }

    /// Runs the Function once on `input` in fresh instances; counts its instructions.
    pub fn run(&self, input: &Value) -> Result<Run> {
        let msgpack = rmp_serde::to_vec(input)?;
        let mut store = Store::new(&self.engine, Host::default());
        store.set_fuel(u64::MAX / 4)?;
        let p = Instance::new(&mut store, &self.provider, &[])?;
        let typed = |store: &mut Store<Host>, name: &str| {
            p.get_func(&mut *store, name)
                .with_context(|| format!("the provider does not export {name}"))
        };
        macro_rules! export {
            ($name:literal) => {
                typed(&mut store, $name)?.typed(&store)?
            };
        }
        let provider = Provider {
            memory: p
                .get_memory(&mut store, "memory")
                .context("provider memory")?,
            alloc: export!("_shopify_function_alloc"),
            input_get: export!("_shopify_function_input_get"),
            get_val_len: export!("_shopify_function_input_get_val_len"),
            get_utf8_str_addr: export!("_shopify_function_input_get_utf8_str_addr"),
            get_obj_prop: export!("_shopify_function_input_get_obj_prop"),
            get_interned_obj_prop: export!("_shopify_function_input_get_interned_obj_prop"),
            get_at_index: export!("_shopify_function_input_get_at_index"),
            get_obj_key_at_index: export!("_shopify_function_input_get_obj_key_at_index"),
            new_bool: export!("_shopify_function_output_new_bool"),
            new_null: export!("_shopify_function_output_new_null"),
            new_i32: export!("_shopify_function_output_new_i32"),
            new_f64: export!("_shopify_function_output_new_f64"),
            new_utf8_str: export!("_shopify_function_output_new_utf8_str"),
            new_interned_utf8_str: export!("_shopify_function_output_new_interned_utf8_str"),
            new_object: export!("_shopify_function_output_new_object"),
            finish_object: export!("_shopify_function_output_finish_object"),
            new_array: export!("_shopify_function_output_new_array"),
            finish_array: export!("_shopify_function_output_finish_array"),
            intern_utf8_str: export!("_shopify_function_intern_utf8_str"),
            log_new_utf8_str: export!("_shopify_function_log_new_utf8_str"),
        };
        let initialize: TypedFunc<i32, i32> = export!("initialize");
        let finalize: TypedFunc<(), i32> = export!("finalize");
        let at = initialize.call(&mut store, msgpack.len() as i32)? as u32 as usize;
        provider.memory.data_mut(&mut store)[at..at + msgpack.len()].copy_from_slice(&msgpack);
        let memory = provider.memory;
        store.data_mut().provider = Some(Arc::new(provider));

        let g = self.linker.instantiate(&mut store, &self.guest)?;
        store.data_mut().guest_memory =
            Some(g.get_memory(&mut store, "memory").context("guest memory")?);
        let entry: TypedFunc<(), ()> =
            g.get_typed_func(&mut store, "cart_validations_generate_run")?;
        let before = store.get_fuel()?;
        entry
            .call(&mut store, ())
            .map_err(anyhow::Error::from)
            .context("the Function trapped")?;
        let instructions = before - store.get_fuel()?;

        let out = finalize.call(&mut store, ())? as u32 as usize;
        let mem = memory.data(&store);
        let (ptr, len) = (
            read_u32(mem, out)? as usize,
            read_u32(mem, out + 4)? as usize,
        );
        let output: Value = rmp_serde::from_slice(&mem[ptr..ptr + len])?;
        Ok(Run {
            instructions,
            import_calls: store.data().import_calls,
            output,
            input_bytes: msgpack.len(),
        })
    }
}

/// Builds the provider crate (a dependency of `shopify_function` on the host) for
/// `wasm32-unknown-unknown`, from the registry source cargo already holds.
pub fn build_provider(target: &Path) -> Result<PathBuf> {
    let meta = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("cargo metadata")?;
    ensure!(meta.status.success(), "cargo metadata failed");
    let meta: Value = serde_json::from_slice(&meta.stdout)?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "shopify_function_provider")
        .and_then(|p| p["manifest_path"].as_str())
        .context("shopify_function_provider is not in the dependency graph")?
        .to_owned();
    let dir = target.join("function-provider");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&dir)
        .status()?;
    ensure!(status.success(), "building the provider wasm failed");
    Ok(dir.join("wasm32-unknown-unknown/release/shopify_function_provider.wasm"))
}
