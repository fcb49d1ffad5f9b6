// Tokens in the address and whose a message is (static/identity.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  fragmentToken, fragmentWithoutToken, tokenSubject, writtenBy,
} from "../../static/identity.js";

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");

describe("tokenSubject", () => {
  it("reads a JWT's sub without checking it", () => {
    const token = `${b64url({ alg: "HS256" })}.${b64url({ sub: "u_Ab-9_x", exp: 1 })}.sig`;
    assert.equal(tokenSubject(token), "u_Ab-9_x");
  });

  it("answers \"\" for anything else", () => {
    assert.equal(tokenSubject("not.a.token"), "");
    assert.equal(tokenSubject("garbage"), "");
    assert.equal(tokenSubject(null), "");
    assert.equal(tokenSubject(`x.${b64url({ name: "no sub" })}.y`), "");
  });
});

describe("the token in the address", () => {
  it("is read from #token=", () => {
    assert.equal(fragmentToken("#token=abc.def.ghi"), "abc.def.ghi");
    assert.equal(fragmentToken("#room=x&token=abc"), "abc");
    assert.equal(fragmentToken("#other"), "");
    assert.equal(fragmentToken(""), "");
  });

  it("is taken out, leaving the rest of the fragment", () => {
    assert.equal(fragmentWithoutToken("#token=abc"), "");
    assert.equal(fragmentWithoutToken("#room=x&token=abc"), "#room=x");
  });
});

describe("writtenBy", () => {
  it("goes by user_id, not by name", () => {
    assert.equal(writtenBy({ user: "sam", user_id: "u_a" }, "u_a", "sam"), true);
    assert.equal(writtenBy({ user: "sam", user_id: "u_b" }, "u_a", "sam"), false);
    assert.equal(writtenBy({ user: "alex", user_id: "u_a" }, "u_a", "sam"), true,
      "the same identity under another name is still you");
  });

  it("falls back to the name for messages without a user_id, or before the session", () => {
    assert.equal(writtenBy({ user: "sam" }, "u_a", "sam"), true);
    assert.equal(writtenBy({ user: "sam", user_id: "u_b" }, null, "sam"), true);
    assert.equal(writtenBy({ user: "sam" }, "u_a", "alex"), false);
  });
});

describe("refusalCode", async () => {
  const { refusalCode } = await import("../../static/connection.js");

  it("reads the code from the error's data, as documented", () => {
    const err = Object.assign(new Error("the token has expired"), {
      data: { code: "unauthorized", message: "the token has expired" },
    });
    assert.equal(refusalCode(err), "unauthorized");
  });

  it("does not guess a code from the message text", () => {
    assert.equal(refusalCode(new Error("unauthorized")), "");
  });

  it("finds none in a transport error", () => {
    assert.equal(refusalCode(new Error("xhr poll error")), "");
    assert.equal(refusalCode(null), "");
  });
});
