// ---
// name: Normalize
// description: Scales an array to 0..1.
// requirements: ["https://cdn.jsdelivr.net/npm/ndarray@1.0.19/ndarray.min.js"]
// ---
class Normalize {
  async setup() {}

  async normalize(values) {
    const min = Math.min(...values);
    const max = Math.max(...values);
    return values.map((v) => (v - min) / (max - min || 1));
  }
}

api.export(new Normalize());
