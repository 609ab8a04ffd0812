self.cachedRan = true;
