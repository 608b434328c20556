// The console: sign-in with client credentials, then the map, the selected thing's details, the
// connectivity check and the reachability matrix; kept current by the server's change long poll.

import { render } from "preact";
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { Api, forget, savedSession, signIn, type Session } from "./api";
import { loadTopology, lower, type Topology } from "./model";
import { NetworkMap, type Selection } from "./NetworkMap";
import { Details } from "./Details";
import { Connectivity } from "./Connectivity";
import { Reachability } from "./Reachability";
import "./style.css";

function Login({ onSession }: { onSession: (s: Session) => void }) {
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

/** Follows `/tessera/changes`: calls `changed` after every change the caller may read. */
function useChanges(api: Api, changed: () => void) {
  const [live, setLive] = useState(false);
  useEffect(() => {
    let stop = false;
    const controller = new AbortController();
    (async () => {
      let revision: number | null = null;
      while (!stop) {
        try {
          const path: string = revision === null ? "/tessera/changes" : `/tessera/changes?revision=${revision}&timeout=25`;
          const r = await api.get(path, undefined, controller.signal);
          setLive(true);
          if (revision !== null && (r.changed?.length || r.resync)) changed();
          revision = r.revision;
        } catch {
          setLive(false);
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

function Console({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const api = useMemo(() => new Api(session, onSignOut), [session]);
  const [topology, setTopology] = useState<Topology | null>(null);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState<Selection>(null);
  const [tab, setTab] = useState<Tab>("details");
  const [path, setPath] = useState<{ vnets: Set<string>; blocked?: string }>({ vnets: new Set() });
  const [message, setMessage] = useState("");
  const [revision, setRevision] = useState(0);
  const [preset, setPreset] = useState<{ source: string; destination: string; protocol: string; port: number }>();

  const reload = useCallback(() => {
    loadTopology(api).then(
      (t) => {
        performance.mark("tessera:loaded");
        setTopology(t);
        setError("");
        setRevision((r) => r + 1);
      },
      (e) => setError(e.message),
    );
  }, [api]);
  useEffect(reload, [reload]);
  const live = useChanges(api, reload);

  if (!topology) {
    return <main class="loading">{error ? <p role="alert">{error}</p> : <p>Loading the network…</p>}</main>;
  }
  const canWrite = (sub: string) => topology.subscriptions.some((s) => lower(s.id) === lower(sub) && s.canWrite);
  const readOnly = !topology.subscriptions.some((s) => s.canWrite);
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
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {topology.subscriptions
        .filter((s) => s.error)
        .map((s) => (
          <p class="warning" role="alert">
            {s.name}: {s.error}
          </p>
        ))}
      <div class="body">
        <NetworkMap topology={topology} selected={selected} onSelect={(s) => (setSelected(s), setTab("details"))} path={path.vnets} blocked={path.blocked} />
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
              <Details api={api} topology={topology} selected={selected} onSelect={setSelected} canWrite={canWrite} notify={setMessage} />
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
  if (!session) return <Login onSession={setSession} />;
  return (
    <Console
      session={session}
      onSignOut={() => {
        forget();
        setSession(null);
      }}
    />
  );
}

render(<App />, document.getElementById("app")!);
