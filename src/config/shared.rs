//! [`Shared`]: a value swapped whole on reload, read as one snapshot.

/// A value swapped whole on reload (the config, the tokens): readers take
/// a snapshot with [`Shared::get`], so one request sees one version.
#[derive(Debug)]
pub struct Shared<T>(std::sync::RwLock<std::sync::Arc<T>>);

impl<T> Shared<T> {
    /// Wraps the first value.
    pub fn new(value: T) -> Self {
        Shared(std::sync::RwLock::new(std::sync::Arc::new(value)))
    }

    /// The value in force now.
    pub fn get(&self) -> std::sync::Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new value in force.
    pub fn set(&self, value: std::sync::Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}
