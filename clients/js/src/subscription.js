// One subscription of the browser client: active across reconnects. On every
// session it subscribes, then (with `recover`) asks `broker.recover` for what
// was missed, and delivers recovered and live events each once, in order
// (recovery.js holds the pure bookkeeping). A gap it cannot fill is reported
// through onUnrecoverable, never skipped silently. `client` is the owning
// BrokerClient: it attaches the subscription to each new session, detaches it
// when the session goes away, and receives its "error" events.

import { describe } from "./errors.js";
import { ResumeTracker, normalizeAnswer, pageProblem, recoveredItem, withTimeout } from "./recovery.js";

const RECOVER = "broker.recover";
/** milliseconds one `broker.recover` call may take before the gap counts as unrecoverable */
const RECOVER_TIMEOUT_MS = 10000;

export class Subscription {
  constructor(client, topic, handler, options) {
    this.client = client;
    this.topic = topic;
    this.match = options.match || "exact";
    this.recover = Boolean(options.recover);
    this._handler = handler;
    this._onUnrecoverable = options.onUnrecoverable || null;
    this._onError = options.onError || null;
    this._recoverTimeout = Number.isFinite(options.recoverTimeout) && options.recoverTimeout > 0 ? options.recoverTimeout : RECOVER_TIMEOUT_MS;
    this._tracker = new ResumeTracker(options.from || null);
    this._gen = 0;
    this._wamp = null;
    this._active = true;
  }

  /** The last position delivered ({epoch, cursor}), or null: store it to resume later with `from`. */
  get position() {
    return this._tracker.position;
  }

  get active() {
    return this._active;
  }

  unsubscribe() {
    if (!this._active) return;
    this._active = false;
    this.client._subs.delete(this);
    const wamp = this._wamp;
    this._detach();
    if (wamp && wamp.session && wamp.session.isOpen) {
      wamp.unsubscribe().catch(() => {});
    }
  }

  _error(err) {
    const e = describe(err);
    e.topic = this.topic;
    if (this._onError) {
      try {
        this._onError(e);
      } catch (inner) {
        this.client._emit("error", inner);
      }
    } else {
      this.client._emit("error", e);
    }
  }

  _deliver(items) {
    for (const { data, meta } of items) {
      if (!this._active) return;
      try {
        this._handler(data, meta);
      } catch (err) {
        this.client._emit("error", err);
      }
    }
  }

  _detach() {
    this._gen += 1;
    this._wamp = null;
    this._tracker.abort();
  }

  async _attach(session) {
    const gen = ++this._gen;
    const ask = this._tracker.begin(this.recover);
    const onEvent = (args, kwargs, details) => {
      if (gen !== this._gen) return;
      const position = (kwargs && kwargs.broker_position) || null;
      const item = { data: args && args.length ? args[0] : undefined, meta: { topic: (details && details.topic) || this.topic, position } };
      this._deliver(this._tracker.live(position, item));
    };
    try {
      const wamp = await session.subscribe(this.topic, onEvent, this.match === "exact" ? {} : { match: this.match });
      if (gen !== this._gen) {
        if (session.isOpen) wamp.unsubscribe().catch(() => {});
        return;
      }
      this._wamp = wamp;
    } catch (err) {
      if (gen !== this._gen) return;
      this._tracker.abort();
      this._error(err);
      return;
    }
    if (!this.recover) return;
    try {
      await this._recover(session, gen, ask);
    } catch (err) {
      if (gen !== this._gen) return; // the session went away: the next one recovers again
      if (ask.probe) this._error(err); // nothing was missed yet, so there is no gap
      else this._unrecoverable(`recovery failed: ${describe(err).message}`, null);
    }
    if (gen === this._gen) this._deliver(this._tracker.finish());
  }

  /**
   * The gap cannot be filled (an unrecoverable answer, or a recovery that
   * failed): continue from the node's position if it gave one, else from the
   * last one delivered, release the held live events, and say so — to
   * `onUnrecoverable`, or as an error — never skip the gap silently.
   */
  _unrecoverable(reason, answer) {
    const epoch = answer && typeof answer.epoch === "string" ? answer.epoch : this._tracker.epoch;
    const cursor = answer && Number.isInteger(answer.cursor) ? answer.cursor : this._tracker.cursor;
    this._tracker.reset({ epoch, cursor });
    const gap = { topic: this.topic, match: this.match, reason, epoch, cursor };
    if (this._onUnrecoverable) {
      try {
        this._onUnrecoverable(gap);
      } catch (err) {
        this.client._emit("error", err);
      }
      return;
    }
    const err = new Error(`missed events on ${this.topic} cannot be recovered: ${reason}`);
    err.unrecoverable = gap;
    this._error(err);
  }

  async _recover(session, gen, ask) {
    const call = (epoch, after) =>
      withTimeout(session.call(RECOVER, [this.topic], { match: this.match, epoch, after }), this._recoverTimeout, RECOVER).then(normalizeAnswer);
    if (ask.probe) {
      // nothing seen yet: learn the current position, so a later reconnect recovers from it
      const answer = await call(ask.epoch, 0);
      if (gen === this._gen) this._tracker.reset(answer);
      return;
    }
    let after = ask.after;
    for (;;) {
      const answer = await call(ask.epoch, after);
      if (gen !== this._gen) return;
      const problem = pageProblem(answer);
      if (problem) throw new TypeError(problem);
      if (answer.unrecoverable) {
        this._unrecoverable(answer.reason, answer);
        return;
      }
      this._deliver(this._tracker.recovered(answer.events.map(recoveredItem)));
      if (!answer.more) return;
      after = answer.events[answer.events.length - 1].position.cursor;
    }
  }
}
