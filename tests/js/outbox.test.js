// The send queue's state (static/outbox.js): order, one at a time, stale acks, back-off.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Outbox } from "../../static/outbox.js";

describe("Outbox", () => {
  it("sends one at a time, oldest first", () => {
    const box = new Outbox();
    const a = box.add("a", "c1");
    const b = box.add("b", "c2");
    assert.equal(box.next(), a);
    const gen = box.begin(a);
    assert.equal(box.next(), null, "one is on its way");
    assert.ok(box.answered(a, gen));
    box.finish("c1");
    assert.equal(box.next(), b);
    assert.equal(box.size, 1);
  });

  it("ignores the answer to an attempt that was superseded", () => {
    const box = new Outbox();
    const a = box.add("a", "c1");
    const first = box.begin(a);
    box.interrupted();
    assert.equal(a.state, "queued");
    const second = box.begin(a);
    assert.equal(box.answered(a, first), false);
    assert.equal(box.answered(a, second), true);
  });

  it("holds the queue while the first waits out a back-off", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const box = new Outbox();
    const a = box.add("a", "c1");
    box.add("b", "c2");
    box.answered(a, box.begin(a));
    let woken = 0;
    box.requeue(a, box.backoff(a), () => {
      woken += 1;
    });
    assert.equal(box.next(), null);
    t.mock.timers.tick(1_000);
    assert.equal(woken, 1);
    assert.equal(box.next(), a);
  });

  it("backs off 1 s, 2 s, 4 s … up to 10 s", () => {
    const box = new Outbox();
    const a = box.add("a", "c1");
    const delays = Array.from({ length: 6 }, () => box.backoff(a));
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 10000, 10000]);
  });

  it("skips failed messages and keeps them until discarded", () => {
    const box = new Outbox();
    const a = box.add("a", "c1");
    const b = box.add("b", "c2");
    box.answered(a, box.begin(a));
    box.fail(a, "too long");
    assert.equal(box.next(), b);
    assert.deepEqual(box.snapshot(), [{ client_id: "c1", text: "a" }, { client_id: "c2", text: "b" }]);
    assert.equal(box.finish("c1").done, true);
    assert.equal(box.finish("c1"), null);
  });
});
