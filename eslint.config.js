// ESLint for the browser client (static/, not the vendored socket.io) and its unit tests.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["static/vendor/**", "node_modules/**", ".venv/**", "var/**"] },
  js.configs.recommended,
  {
    files: ["static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-var": "error",
      "prefer-const": "error",
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
      "no-shadow": "error",
      "no-throw-literal": "error",
      "no-use-before-define": ["error", { functions: false, classes: false, variables: false }],
      // User text goes in through textContent only: never as HTML.
      "no-restricted-properties": [
        "error",
        { property: "innerHTML", message: "Build elements with el() and textContent." },
        { property: "outerHTML", message: "Build elements with el() and textContent." },
        { property: "insertAdjacentHTML", message: "Build elements with el() and textContent." },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.property.name='write'][callee.object.name='document']",
          message: "No document.write.",
        },
      ],
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
    },
  },
  {
    files: ["tests/js/**/*.js", "eslint.config.js"],
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: "module",
      globals: { ...globals.node },
    },
  },
];
