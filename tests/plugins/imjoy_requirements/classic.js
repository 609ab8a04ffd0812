self.classicLoaded = (self.classicLoaded || 0) + 1;
