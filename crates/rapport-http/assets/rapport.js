/*! rapport.js: Rapport's website tracker. It speaks the Segment tracking API to the Rapport server it is loaded
 * from. Plain ES2017, no dependencies, no build step. See docs/tracking.md, "Website tracker". */
(() => {
  "use strict";

  const VERSION = "0.1.0";
  const ANONYMOUS_ID_KEY = "rapport_anonymous_id";
  const USER_ID_KEY = "rapport_user_id";
  const QUEUE_KEY_PREFIX = "rapport_queue:";
  const FLUSH_DELAY_MS = 1000;
  const FLUSH_AT_MESSAGES = 20;
  // The queue survives reloads; past this many messages the oldest are dropped.
  const MAX_QUEUED_MESSAGES = 200;
  // The API takes 500 KB per request; browsers allow 64 KB of beacons in flight at once.
  const MAX_REQUEST_CHARS = 400 * 1024;
  const MAX_BEACON_CHARS = 60 * 1024;
  const MAX_RETRY_DELAY_MS = 60 * 1000;
  const COOKIE_MAX_AGE_SECONDS = 365 * 24 * 60 * 60;
  const CAMPAIGN_PARAMETERS = [
    ["source", "utm_source"],
    ["medium", "utm_medium"],
    ["name", "utm_campaign"],
    ["term", "utm_term"],
    ["content", "utm_content"],
  ];

  const stub = window.rapport;
  if (stub && stub.isRapport) {
    return;
  }

  // Without an explicit host, events go back to the server that served this script.
  let scriptOrigin = "";
  try {
    scriptOrigin = new URL(document.currentScript.src).origin;
  } catch (error) {
    // Inlined or injected without a src: `load` must then be given a host.
  }

  const state = {
    writeKey: null,
    host: "",
    queueKey: "",
    disabled: false,
    anonymousId: null,
    userId: null,
    // Calls made before `load`, replayed by it.
    pending: [],
    timer: null,
    // The request in flight, as a promise.
    sending: null,
    failures: 0,
  };

  const warn = (message) => {
    if (window.console && console.warn) {
      console.warn(`rapport.js: ${message}`);
    }
  };

  const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

  // Storage ---------------------------------------------------------------------------------------------------------

  // localStorage throws in some private modes and sandboxed frames; memory then stands in for it.
  const memoryStore = new Map();
  const localStore = (() => {
    try {
      window.localStorage.setItem("rapport_probe", "1");
      window.localStorage.removeItem("rapport_probe");
      return window.localStorage;
    } catch (error) {
      return null;
    }
  })();

  const stored = (key) => {
    if (localStore) {
      try {
        const value = localStore.getItem(key);
        if (value !== null) {
          return value;
        }
      } catch (error) {
        // Fall through to memory.
      }
    }
    return memoryStore.has(key) ? memoryStore.get(key) : null;
  };

  const store = (key, value) => {
    if (value === null) {
      memoryStore.delete(key);
    } else {
      memoryStore.set(key, value);
    }
    if (!localStore) {
      return;
    }
    try {
      if (value === null) {
        localStore.removeItem(key);
      } else {
        localStore.setItem(key, value);
      }
    } catch (error) {
      // Full: memory keeps the value for this page, and a stale copy must not shadow it.
      try {
        localStore.removeItem(key);
      } catch (ignored) {
        // Blocked altogether.
      }
    }
  };

  const readCookie = (name) => {
    let cookies;
    try {
      cookies = document.cookie ? document.cookie.split("; ") : [];
    } catch (error) {
      return null;
    }
    for (const cookie of cookies) {
      const separator = cookie.indexOf("=");
      if (cookie.slice(0, separator) === name) {
        try {
          return decodeURIComponent(cookie.slice(separator + 1));
        } catch (error) {
          return null;
        }
      }
    }
    return null;
  };

  // Sets a first-party cookie on the widest domain the browser accepts (example.com for www.example.com, so that
  // every subdomain shares it; the browser refuses public suffixes such as com.cn, which are thus skipped).
  const writeCookie = (name, value, maxAgeSeconds) => {
    const secure = location.protocol === "https:" ? "; secure" : "";
    const cookie = `${name}=${encodeURIComponent(value)}; path=/; max-age=${maxAgeSeconds}; samesite=lax${secure}`;
    try {
      const host = location.hostname;
      const labels = host.split(".");
      const isAddress = /^[\d.]+$/.test(host) || host.includes(":");
      if (labels.length > 1 && !isAddress) {
        for (let first = labels.length - 2; first >= 0; first--) {
          document.cookie = `${cookie}; domain=${labels.slice(first).join(".")}`;
          if (readCookie(name) === value) {
            return;
          }
        }
      }
      document.cookie = cookie;
    } catch (error) {
      // Cookies are blocked; localStorage keeps the id.
    }
  };

  // Identity --------------------------------------------------------------------------------------------------------

  const uuid = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (byte) => (byte + 0x100).toString(16).slice(1)).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  };

  const setAnonymousId = (id) => {
    // Written on every page, so the cookie lives a year from the last visit.
    writeCookie(ANONYMOUS_ID_KEY, id, COOKIE_MAX_AGE_SECONDS);
    store(ANONYMOUS_ID_KEY, id);
    state.anonymousId = id;
  };

  const anonymousId = () => {
    if (!state.anonymousId) {
      setAnonymousId(readCookie(ANONYMOUS_ID_KEY) || stored(ANONYMOUS_ID_KEY) || uuid());
    }
    return state.anonymousId;
  };

  const doNotTrack = () =>
    navigator.doNotTrack === "1" ||
    navigator.doNotTrack === "yes" ||
    window.doNotTrack === "1" ||
    navigator.msDoNotTrack === "1" ||
    navigator.globalPrivacyControl === true;

  // Messages --------------------------------------------------------------------------------------------------------

  const pageDetails = () => ({
    url: location.href.split("#")[0],
    path: location.pathname,
    referrer: document.referrer,
    title: document.title,
    search: location.search,
  });

  const context = () => {
    const parameters = new URLSearchParams(location.search);
    const campaign = {};
    for (const [field, parameter] of CAMPAIGN_PARAMETERS) {
      const value = parameters.get(parameter);
      if (value) {
        campaign[field] = value;
      }
    }
    const result = {
      page: pageDetails(),
      userAgent: navigator.userAgent,
      locale: navigator.language,
      screen: { width: screen.width, height: screen.height, density: window.devicePixelRatio },
      library: { name: "rapport.js", version: VERSION },
    };
    try {
      result.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch (error) {
      // An Intl without time zones.
    }
    if (Object.keys(campaign).length) {
      result.campaign = campaign;
    }
    return result;
  };

  const enqueue = (type, fields) => {
    const now = new Date().toISOString();
    const message = Object.assign(
      {
        type,
        messageId: uuid(),
        anonymousId: anonymousId(),
        // The server corrects the device's clock with sentAt, which is set when the message actually leaves.
        timestamp: now,
        originalTimestamp: now,
        context: context(),
      },
      fields
    );
    if (state.userId) {
      message.userId = state.userId;
    }
    const queue = readQueue();
    queue.push(message);
    writeQueue(queue);
    if (queue.length >= FLUSH_AT_MESSAGES && state.failures === 0) {
      flush();
    } else {
      schedule(FLUSH_DELAY_MS);
    }
  };

  // Queue and delivery ----------------------------------------------------------------------------------------------

  // The queue lives in localStorage so that a message whose delivery failed is retried after a reload. Tabs of the
  // site share it; a message that two tabs both send is stored once, since the server deduplicates on messageId.
  const readQueue = () => {
    try {
      const queue = JSON.parse(stored(state.queueKey) || "[]");
      return Array.isArray(queue) ? queue : [];
    } catch (error) {
      return [];
    }
  };

  const writeQueue = (queue) => {
    const kept = queue.slice(-MAX_QUEUED_MESSAGES);
    store(state.queueKey, kept.length ? JSON.stringify(kept) : null);
  };

  const removeFromQueue = (sent) => {
    const ids = new Set(sent.map((message) => message.messageId));
    writeQueue(readQueue().filter((message) => !ids.has(message.messageId)));
  };

  // The longest prefix of the queue whose JSON fits in `limit` characters (at least one message).
  const takeBatch = (queue, limit) => {
    let size = 0;
    const batch = [];
    for (const message of queue) {
      size += JSON.stringify(message).length + 1;
      if (batch.length && size > limit) {
        break;
      }
      batch.push(message);
    }
    return batch;
  };

  const batchBody = (batch) =>
    JSON.stringify({ batch, writeKey: state.writeKey, sentAt: new Date().toISOString() });

  const schedule = (delay) => {
    if (!state.timer && !state.sending) {
      state.timer = setTimeout(() => {
        state.timer = null;
        flush();
      }, delay);
    }
  };

  // Exponential back-off with jitter: about 1 s, 2 s, 4 s, … up to a minute.
  const retryDelay = () => {
    const delay = Math.min(MAX_RETRY_DELAY_MS, 1000 * Math.pow(2, state.failures - 1));
    return delay / 2 + Math.random() * (delay / 2);
  };

  // Whether the batch is done with: delivered, or refused for good. Network errors, 5xx and 429 are worth a retry;
  // any other refusal does not get better by sending the same request again.
  const send = async (batch) => {
    let response;
    try {
      // text/plain keeps this a "simple" cross-origin request: no preflight.
      response = await fetch(`${state.host}/v1/batch`, {
        method: "POST",
        headers: { "Content-Type": "text/plain" },
        body: batchBody(batch),
        credentials: "omit",
      });
    } catch (error) {
      return false;
    }
    if (response.status === 429 || response.status >= 500) {
      return false;
    }
    if (!response.ok) {
      warn(`Rapport refused the events (HTTP ${response.status}); check the write key`);
    }
    return true;
  };

  // Sends the oldest queued messages in one request; resolves when it has been answered.
  const flush = () => {
    if (state.sending) {
      return state.sending;
    }
    clearTimeout(state.timer);
    state.timer = null;
    const batch = takeBatch(readQueue(), MAX_REQUEST_CHARS);
    if (!state.writeKey || !batch.length) {
      return Promise.resolve();
    }
    state.sending = send(batch).then((done) => {
      state.sending = null;
      if (done) {
        state.failures = 0;
        removeFromQueue(batch);
        if (readQueue().length) {
          schedule(0);
        }
      } else {
        state.failures += 1;
        schedule(retryDelay());
      }
    });
    return state.sending;
  };

  // When the page is hidden or left, whatever is queued goes out as beacons, which the browser delivers even after
  // the page is gone. Messages also in a fetch still in flight may arrive twice; the server keeps one.
  const flushWithBeacon = () => {
    if (!state.writeKey || !navigator.sendBeacon) {
      return;
    }
    let queue = readQueue();
    while (queue.length) {
      const batch = takeBatch(queue, MAX_BEACON_CHARS);
      let accepted = false;
      try {
        accepted = navigator.sendBeacon(`${state.host}/v1/batch`, batchBody(batch));
      } catch (error) {
        // Treated as refused: the messages stay for the next page.
      }
      if (!accepted) {
        break;
      }
      removeFromQueue(batch);
      queue = queue.slice(batch.length);
    }
  };

  // The API ---------------------------------------------------------------------------------------------------------

  const methods = {
    load(writeKey, options) {
      if (state.writeKey) {
        return;
      }
      options = options || {};
      if (!writeKey) {
        warn("load needs the source's write key");
        return;
      }
      if (options.respectDnt && doNotTrack()) {
        // Nothing is stored and nothing is sent: not even the anonymous id.
        state.disabled = true;
        state.pending = [];
        return;
      }
      state.writeKey = String(writeKey);
      state.host = String(options.host || scriptOrigin).replace(/\/+$/, "");
      state.queueKey = QUEUE_KEY_PREFIX + state.writeKey;
      state.userId = stored(USER_ID_KEY);
      anonymousId();
      const pending = state.pending;
      state.pending = [];
      for (const [name, args] of pending) {
        methods[name](...args);
      }
      // Messages left by an earlier page: a failed delivery, a refused beacon.
      if (readQueue().length) {
        schedule(FLUSH_DELAY_MS);
      }
      window.addEventListener("pagehide", flushWithBeacon);
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "hidden") {
          flushWithBeacon();
        }
      });
      window.addEventListener("online", () => {
        if (state.failures) {
          clearTimeout(state.timer);
          state.timer = null;
          flush();
        }
      });
    },

    // page([category], [name], [properties])
    page(...args) {
      const properties = isObject(args[args.length - 1]) ? args.pop() : {};
      const name = args.pop();
      const category = args.pop();
      enqueue("page", {
        name: name == null ? undefined : String(name),
        category: category == null ? undefined : String(category),
        properties: Object.assign(pageDetails(), properties),
      });
    },

    track(event, properties) {
      if (!event) {
        warn("track needs an event name");
        return;
      }
      enqueue("track", { event: String(event), properties: isObject(properties) ? properties : {} });
    },

    // identify(userId, [traits]) or identify(traits): the user id is kept for every later message.
    identify(userId, traits) {
      if (isObject(userId)) {
        traits = userId;
        userId = null;
      }
      if (userId != null && userId !== "") {
        state.userId = String(userId);
        store(USER_ID_KEY, state.userId);
      }
      enqueue("identify", { traits: isObject(traits) ? traits : {} });
    },

    // Forgets the user (on logout): later messages carry a new anonymous id and no user id.
    reset() {
      state.userId = null;
      store(USER_ID_KEY, null);
      setAnonymousId(uuid());
    },
  };

  const rapport = { isRapport: true, VERSION };
  for (const name of Object.keys(methods)) {
    rapport[name] = (...args) => {
      try {
        if (state.disabled) {
          return;
        }
        if (!state.writeKey && name !== "load") {
          state.pending.push([name, args]);
          return;
        }
        methods[name](...args);
      } catch (error) {
        // The tracker must never break the page it runs on.
        warn(String(error));
      }
    };
  }

  // Sends what is queued now; resolves when that request is answered.
  rapport.flush = () => (state.writeKey ? flush() : Promise.resolve());

  rapport.user = () => ({ anonymousId: state.writeKey ? anonymousId() : null, userId: state.userId });

  window.rapport = rapport;

  // The snippet's stub queued [method, ...arguments] arrays; load runs first so that the others are not held back.
  if (Array.isArray(stub)) {
    const calls = stub.slice();
    const ordered = calls.filter((call) => call[0] === "load").concat(calls.filter((call) => call[0] !== "load"));
    for (const [name, ...args] of ordered) {
      if (typeof rapport[name] === "function") {
        rapport[name](...args);
      }
    }
  }
})();
