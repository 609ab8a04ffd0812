// ---
// name: Bad Header
// requirements:
//   - https://cdn.jsdelivr.net/npm/lodash@4.17.21/lodash.min.js
//  - "unterminated
// ---
api.export({setup() {}});
