// The console: sign-in with client credentials, then the map, the selected thing's details, the
// connectivity check and the reachability matrix; kept current by the server's change long poll.

import { render } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Api, ApiError, forget, savedSession, signIn, type Session } from "./api";
import { loadTopology, lower, type Topology } from "./model";
import { NetworkMap, type Selection } from "./NetworkMap";
import { Details } from "./Details";
import { Connectivity } from "./Connectivity";
import { Reachability } from "./Reachability";
import "./style.css";

function Login({ onSession, note }: { onSession: (s: Session) => void; note: string }) {
  const [tenant, setTenant] = useState("");
  const [clientId, setClientId] = useState("");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setError("");
    try {
      onSession(await signIn(tenant.trim(), clientId.trim(), secret));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <h1>Tessera</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <p>Sign in with a service principal's client credentials (as in credentials.json).</p>
        {note && <p role="status">{note}</p>}
        <label>
          Tenant ID <input name="tenant" value={tenant} onInput={(e) => setTenant((e.target as HTMLInputElement).value)} required autoFocus />
        </label>
        <label>
          Client ID <input name="client" value={clientId} onInput={(e) => setClientId((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          Client secret{" "}
          <input name="secret" type="password" value={secret} onInput={(e) => setSecret((e.target as HTMLInputElement).value)} required />
        </label>
        {error && <p role="alert" class="error">{error}</p>}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

type Tab = "details" | "connectivity" | "reachability";

/** Follows `/tessera/changes`: calls `changed` after every change the caller may read (and
 * once at the start, after the first cursor is held, so that nothing falls between). */
function useChanges(api: Api, changed: () => void) {
  const [live, setLive] = useState(false);
  useEffect(() => {
    let stop = false;
    const controller = new AbortController();
    (async () => {
      let cursor: string | null = null;
      let started = false;
      while (!stop) {
        try {
          const path: string = cursor === null ? "/tessera/changes" : `/tessera/changes?cursor=${cursor}&timeout=25`;
          const r = await api.get(path, undefined, controller.signal);
          setLive(true);
          if ((cursor === null && !started) || r.changed?.length || r.resync) changed();
          started = true;
          cursor = typeof r.cursor === "string" ? r.cursor : null;
        } catch (e) {
          setLive(false);
          // The map is read even when the change poll is refused (it then only misses updates).
          if (cursor === null && !started) {
            started = true;
            changed();
          }
          // A cursor refused (a server that does not know it) starts again from a new one.
          if (e instanceof ApiError && e.status >= 400 && e.status < 500 && cursor !== null) {
            // Whatever changed meanwhile is read again with the next cursor.
            cursor = null;
            started = false;
          }
          if (!stop) await new Promise((res) => setTimeout(res, 2000));
        }
      }
    })();
    return () => {
      stop = true;
      controller.abort();
    };
  }, [api]);
  return live;
}

function Console({ session, onSignOut }: { session: Session; onSignOut: (why?: string) => void }) {
  const api = useMemo(() => new Api(session, () => onSignOut("Your session ended (the token expired or was refused): sign in again.")), [session]);
  const [topology, setTopology] = useState<Topology | null>(null);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState<Selection>(null);
  const [tab, setTab] = useState<Tab>("details");
  const [path, setPath] = useState<{ vnets: Set<string>; blocked?: string }>({ vnets: new Set() });
  const [message, setMessage] = useState("");
  const [revision, setRevision] = useState(0);
  const [preset, setPreset] = useState<{ source: string; destination: string; protocol: string; port: number }>();
  const [hidden, setHidden] = useState<Set<string>>(new Set());
  // The map shows the subscriptions ticked (a line to a VNet of one not shown ends at a grey box).
  const shown = useMemo<Topology | null>(() => {
    if (!topology || hidden.size === 0) return topology;
    const vnets = new Map([...topology.vnets].filter(([, v]) => !hidden.has(lower(v.subscription))));
    return { ...topology, vnets };
  }, [topology, hidden]);

  // One load at a time; a change during a load asks for one more after it (the latest wins).
  const loading = useRef<{ running: boolean; again: boolean }>({ running: false, again: false });
  const reload = useCallback(() => {
    const l = loading.current;
    if (l.running) {
      l.again = true;
      return;
    }
    l.running = true;
    loadTopology(api)
      .then(
        (t) => {
          performance.mark("tessera:loaded");
          setTopology(t);
          setError("");
          setRevision((r) => r + 1);
        },
        (e) => setError(e.message),
      )
      .finally(() => {
        l.running = false;
        if (l.again) {
          l.again = false;
          reload();
        }
      });
  }, [api]);
  const live = useChanges(api, reload);

  if (!topology || !shown) {
    return <main class="loading">{error ? <p role="alert">{error}</p> : <p>Loading the network…</p>}</main>;
  }
  const canWrite = (sub: string) => topology.subscriptions.some((s) => lower(s.id) === lower(sub) && s.canWrite);
  const readOnly = !topology.subscriptions.some((s) => s.canWrite) && ![...topology.vnets.values()].some((v) => v.canWrite);
  const tabs: [Tab, string][] = [
    ["details", "Details"],
    ["connectivity", "Connectivity"],
    ["reachability", "Reachability"],
  ];
  return (
    <div class="console">
      <header>
        <h1>Tessera</h1>
        <span class="counts">
          {topology.subscriptions.length} subscription(s) · {topology.vnets.size} VNets
        </span>
        {readOnly && <span class="badge" data-read-only>read only</span>}
        <span class={`live ${live ? "on" : "off"}`} role="status">
          {live ? "live" : "reconnecting…"}
        </span>
        <span class="who">{session.clientId}</span>
        <button type="button" onClick={() => onSignOut()}>
          Sign out
        </button>
      </header>
      {error && (
        <p class="warning" role="alert">
          The map may be out of date: {error}
        </p>
      )}
      {topology.subscriptions
        .filter((s) => s.error || s.partial)
        .map((s) => (
          <p class="warning" role="alert">
            {s.name}: {s.error ?? "you may read only some of its resource groups; the map shows what you may read"}
          </p>
        ))}
      {topology.subscriptions.length > 1 && (
        <fieldset class="subscriptions">
          <legend>Subscriptions on the map</legend>
          {topology.subscriptions.map((s) => (
            <label>
              <input
                type="checkbox"
                checked={!hidden.has(lower(s.id))}
                onChange={(e) => {
                  const next = new Set(hidden);
                  if ((e.target as HTMLInputElement).checked) next.delete(lower(s.id));
                  else next.add(lower(s.id));
                  setHidden(next);
                }}
              />{" "}
              {s.name} ({[...topology.vnets.values()].filter((v) => lower(v.subscription) === lower(s.id)).length})
            </label>
          ))}
        </fieldset>
      )}
      <div class="body">
        <NetworkMap topology={shown} selected={selected} onSelect={(s) => (setSelected(s), setTab("details"))} path={path.vnets} blocked={path.blocked} />
        <div class="side">
          <div role="tablist" aria-label="Panels">
            {tabs.map(([t, label]) => (
              <button type="button" role="tab" id={`tab-${t}`} aria-selected={tab === t} aria-controls={`panel-${t}`} onClick={() => setTab(t)}>
                {label}
              </button>
            ))}
          </div>
          <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
            {tab === "details" && (
              <Details api={api} topology={shown} selected={selected} onSelect={setSelected} notify={setMessage} />
            )}
            <div hidden={tab !== "connectivity"}>
              <Connectivity api={api} topology={topology} canWrite={canWrite} onPath={(vnets, blocked) => setPath({ vnets, blocked })} preset={preset} />
            </div>
            {tab === "reachability" && (
              <Reachability
                api={api}
                revision={revision}
                onExplain={(source, destination, protocol, port) => {
                  setPreset({ source, destination, protocol, port });
                  setTab("connectivity");
                }}
              />
            )}
          </div>
          <p class="message" role="status" aria-live="polite">
            {message}
          </p>
        </div>
      </div>
    </div>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(savedSession());
  const [note, setNote] = useState("");
  if (!session) return <Login onSession={(s) => (setNote(""), setSession(s))} note={note} />;
  return (
    <Console
      session={session}
      onSignOut={(why?: string) => {
        forget();
        setNote(why ?? "");
        setSession(null);
      }}
    />
  );
}

render(<App />, document.getElementById("app")!);
