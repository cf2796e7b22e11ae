// The LINE card on HubSpot contact records: the conversation linehub holds for this contact,
// per connected LINE account, and a reply box. It reaches linehub only through hubspot.fetch,
// which HubSpot signs with the app's client secret; linehub checks that signature and the portal
// before it reads anything. Replace LINEHUB_URL with linehub's server.public_base_url (the same
// URL as permittedUrls.fetch in ../app-hsmeta.json); `linehub hubspot-app` fills it in.
import React, { useCallback, useEffect, useState } from "react";
import {
  Alert,
  Button,
  Divider,
  EmptyState,
  Flex,
  Heading,
  LoadingSpinner,
  Tag,
  Text,
  TextArea,
  hubspot,
} from "@hubspot/ui-extensions";
import type { CrmContext } from "@hubspot/ui-extensions";

const LINEHUB_URL = "https://linehub.example.com";

/** One message of the conversation, as linehub's `/hubspot/cards/conversation` answers it. */
interface Message {
  /** When it was sent or received (ms since the epoch). */
  at: number;
  /** `in`: the person wrote; `out`: linehub sent it. */
  direction: "in" | "out";
  /** Who sent it: the person's LINE name, a rep, a workflow or a broadcast. */
  from: string;
  /** The message, readable whatever its type. */
  text: string;
  /** For sends: `reply`, `push` or `multicast`, and the state when not yet sent. */
  via?: string;
}

/** One connected LINE account this contact is a friend of. */
interface AccountConversation {
  account: string;
  name: string;
  userId: string;
  messages: Message[];
}

interface ConversationAnswer {
  accounts: AccountConversation[];
}

interface ReplyAnswer {
  ok: boolean;
  message: string;
  via?: string;
}

hubspot.extend<"crm.record.tab">(({ context }) => <LineConversation context={context} />);

function LineConversation({ context }: { context: CrmContext }) {
  const contactId = String(context.crm.objectId);
  const rep = `${context.user.firstName} ${context.user.lastName}`.trim() || context.user.email;
  const [answer, setAnswer] = useState<ConversationAnswer | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const res = await hubspot.fetch(
        `${LINEHUB_URL}/hubspot/cards/conversation?contactId=${encodeURIComponent(contactId)}`,
        { method: "GET", timeout: 10000 },
      );
      if (!res.ok) {
        setError(`linehub answered ${res.status}`);
        return;
      }
      setAnswer((await res.json()) as ConversationAnswer);
      setError(null);
    } catch (e) {
      setError("linehub could not be reached");
    }
  }, [contactId]);

  useEffect(() => {
    void load();
  }, [load]);

  if (error) {
    return <Alert title="LINE conversation unavailable" variant="error">{error}</Alert>;
  }
  if (!answer) {
    return <LoadingSpinner label="Loading the LINE conversation" />;
  }
  if (answer.accounts.length === 0) {
    return (
      <EmptyState title="No LINE account linked" layout="vertical">
        <Text>This contact is not a friend of any connected LINE account yet.</Text>
      </EmptyState>
    );
  }
  return (
    <Flex direction="column" gap="medium">
      {answer.accounts.map((a) => (
        <AccountView key={a.account} contactId={contactId} rep={rep} conversation={a} onSent={load} />
      ))}
    </Flex>
  );
}

function AccountView(props: {
  contactId: string;
  rep: string;
  conversation: AccountConversation;
  onSent: () => Promise<void>;
}) {
  const { contactId, rep, conversation, onSent } = props;
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const [result, setResult] = useState<ReplyAnswer | null>(null);

  const send = async () => {
    setSending(true);
    try {
      const res = await hubspot.fetch(`${LINEHUB_URL}/hubspot/cards/reply`, {
        method: "POST",
        timeout: 15000,
        body: { contactId, account: conversation.account, text, rep },
      });
      const reply = (await res.json()) as ReplyAnswer;
      setResult(reply);
      if (reply.ok) {
        setText("");
        await onSent();
      }
    } catch (e) {
      setResult({ ok: false, message: "linehub could not be reached; nothing was sent" });
    } finally {
      setSending(false);
    }
  };

  return (
    <Flex direction="column" gap="small">
      <Heading>{conversation.name}</Heading>
      {conversation.messages.map((m, i) => (
        <Flex key={i} direction="row" gap="small" align="start">
          <Tag variant={m.direction === "in" ? "default" : "success"}>{m.direction === "in" ? "in" : "out"}</Tag>
          <Text format={{ fontWeight: "bold" }}>{m.from}</Text>
          <Text>{m.text}</Text>
          <Text variant="microcopy">
            {new Date(m.at).toLocaleString()}
            {m.via ? ` · ${m.via}` : ""}
          </Text>
        </Flex>
      ))}
      <TextArea
        name={`reply-${conversation.account}`}
        label="Reply on LINE"
        value={text}
        onChange={(v: string) => setText(v)}
      />
      <Button variant="primary" disabled={sending || text.trim() === ""} onClick={() => void send()}>
        Send
      </Button>
      {result ? (
        <Alert title={result.ok ? "Sent" : "Not sent"} variant={result.ok ? "success" : "error"}>
          {result.message}
        </Alert>
      ) : null}
      <Divider />
    </Flex>
  );
}
