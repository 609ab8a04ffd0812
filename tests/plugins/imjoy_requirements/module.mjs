self.moduleLoaded = typeof import.meta.url;
