import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useEffect, useId, useState } from 'react';
import { api } from './api.js';
import { ErrorBox, MutationButton, useCanWrite } from './ui.js';

/**
 * Edits a JSON object (noderole or deployment-role data) and saves it with `PUT <path> {data}`. The text
 * must parse as a JSON object before it is sent; the API checks the data against the role's attribs
 * (or refuses data of a noderole that is not proposed) with a message shown as it says it.
 */
export function JsonEditor(props: {
  label: string;
  value: Record<string, unknown>;
  path: string;
  invalidate: unknown[];
  /** Why it cannot be edited now (inventory takes data only while proposed); unset: editable. */
  locked?: string | undefined;
}) {
  const qc = useQueryClient();
  const canWrite = useCanWrite() && !props.locked;
  const id = useId();
  const initial = JSON.stringify(props.value, null, 2);
  const [text, setText] = useState(initial);
  const [local, setLocal] = useState<string | null>(null);
  useEffect(() => setText(initial), [initial]);
  const save = useMutation({
    mutationFn: (data: Record<string, unknown>) => api('PUT', props.path, { data }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: props.invalidate }),
  });
  const submit = () => {
    setLocal(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      setLocal(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      setLocal('the data must be a JSON object');
      return;
    }
    save.mutate(parsed as Record<string, unknown>);
  };
  return (
    <div className="json-editor">
      <label htmlFor={id}>{props.label}</label>
      <textarea
        id={id}
        rows={Math.min(16, Math.max(3, text.split('\n').length))}
        value={text}
        onChange={(e) => setText(e.target.value)}
        readOnly={!canWrite}
        data-mutation=""
        disabled={!canWrite}
        spellCheck={false}
      />
      <MutationButton
        onClick={submit}
        busy={save.isPending || text === initial}
        label={`save ${props.label}`}
      >
        Save
      </MutationButton>
      {props.locked && <span className="muted">{props.locked}</span>}
      {save.isSuccess && text === initial && <span className="muted">saved</span>}
      {local && (
        <p className="error" role="alert">
          {local}
        </p>
      )}
      <ErrorBox error={save.error} />
    </div>
  );
}
