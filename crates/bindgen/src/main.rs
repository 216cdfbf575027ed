//! `uniffi-bindgen`: generates the Kotlin, Swift and Python sources of `heeldiary-ffi` from the
//! built library, e.g.
//! `uniffi-bindgen generate --library target/release/libheeldiary_ffi.so --language kotlin --out-dir target/bindings/kotlin`.
//!
//! It lives in the workspace so that the generator and the scaffolding in the library come from
//! one uniffi version (a mismatch fails at load time with a checksum error). It depends on uniffi
//! only.

fn main() {
    uniffi::uniffi_bindgen_main()
}
