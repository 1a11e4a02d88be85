pub mod bundle;
pub mod chain;
pub mod json;
pub mod sign;
