/**
 * Assembly, the step after prepare: the job's prepared objects become planner inputs and
 * the targets their vectors go to. An object alone is one input; a group's usable images
 * are `multi_images` parts of 8; a pair is one fused input (compose.ts says which objects
 * form a unit, this module builds the inputs and the unit payload fields).
 */
import { groupParts, groupPointKey, unitEtag } from './compose.js';
import type { ObjectRef, UnitTuple } from './embed-job.js';
import type { FixupRecord } from './fixup.js';
import type { PreparedInput } from './prepared-input.js';
import type { ItemOutcome } from './runs.js';
import type { PointPayload } from './vector-store.js';

/** An object of the job after fetch and prepare: an input, or the outcome that replaced one. */
export interface Prepared {
  readonly ref: ObjectRef;
  /** The ETag of the version fetched (it may differ from the scan's). */
  readonly etag: string;
  /** The fetched version's size and modification time, where they differ from the scan's. */
  readonly version?: { readonly size: number; readonly lastModified: string };
  readonly input?: PreparedInput;
  readonly outcome?: ItemOutcome;
  /** What was done to an image to make it acceptable (recorded in its point's payload). */
  readonly fixup?: FixupRecord;
}

/** Where a planned input's vector goes: its point key, the objects it stands for, and a unit's payload. */
export interface Target {
  readonly pointKey: string;
  readonly members: readonly Prepared[];
  /** A group part: its number and the group's part count (the point's chunk and chunk_count). */
  readonly part?: { readonly index: number; readonly count: number };
  /** Every member of the unit the input belongs to (a group's other parts too). */
  readonly unitMembers?: readonly Prepared[];
  /** A unit's own payload fields (key, etag, size, modality and what names its members). */
  readonly unit?: Pick<PointPayload, 'key' | 'etag' | 'size' | 'last_modified' | 'modality'> &
    Readonly<Record<string, unknown>>;
}

/** A point key of the job (an object's, or a unit's) and the objects behind it, for stale-point removal. */
export interface Slot {
  readonly pointKey: string;
  readonly members: readonly Prepared[];
  /** The ETag its points carry once indexed (an object's, or its unit's hash). */
  readonly etag: string;
  readonly unit: boolean;
}

/** Sources of unit inputs start with NUL: they can never equal an object key. */
const unitSource = (unit: number, part: number): string => `\u0000u${unit}.${part}`;

/**
 * Turns the job's prepared objects into planner inputs: an object alone as it is, a
 * group's usable images as `multi_images` parts of 8, a pair as one fused input. A member
 * that could not be prepared is recorded (outcomes) and leaves the group without it; a
 * pair missing either member is skipped whole, with the reason naming the member.
 */
export interface Assembly {
  readonly inputs: PreparedInput[];
  /** Planned input source -> where its vector goes. */
  readonly targets: Map<string, Target>;
  /** Every point key of the job, for stale-point removal. */
  readonly slots: Slot[];
}

export function assemble(
  prepared: readonly Prepared[],
  units: readonly UnitTuple[],
  outcomes: Map<string, ItemOutcome>,
): Assembly {
  const inputs: PreparedInput[] = [];
  const targets = new Map<string, Target>();
  const slots: Slot[] = [];
  const inUnit = new Set(units.flatMap(([, , members]) => members));
  prepared.forEach((p, i) => {
    if (inUnit.has(i)) return;
    slots.push({ pointKey: p.ref.key, members: [p], etag: p.etag, unit: false });
    if (!p.input) return;
    inputs.push(p.input);
    targets.set(p.input.source, { pointKey: p.ref.key, members: [p] });
  });
  const size = (ms: readonly Prepared[]): number => ms.reduce((n, m) => n + m.ref.size, 0);
  const latest = (ms: readonly Prepared[]): string =>
    ms
      .map((m) => m.ref.lastModified)
      .sort()
      .at(-1) ?? '';
  const fixups = (ms: readonly Prepared[]): object => {
    const done = ms.filter((m) => m.fixup);
    return done.length > 0 ? { fixups: Object.fromEntries(done.map((m) => [m.ref.key, m.fixup])) } : {};
  };
  units.forEach(([kind, id, indexes], u) => {
    const members = indexes.map((i) => prepared[i]!);
    const etag = unitEtag(members.map((m) => ({ key: m.ref.key, etag: m.etag })));
    if (kind === 'g') {
      const pointKey = groupPointKey(id);
      slots.push({ pointKey, members, etag, unit: true });
      const usable = members.filter((m) => m.input?.kind === 'image').sort((a, b) => (a.ref.key < b.ref.key ? -1 : 1));
      const parts = groupParts(usable);
      parts.forEach((part, index) => {
        const source = unitSource(u, index);
        inputs.push({
          kind: 'multi_images',
          source,
          images: part.map((m) => (m.input as Extract<PreparedInput, { kind: 'image' }>).image),
        });
        targets.set(source, {
          pointKey,
          members: part,
          unitMembers: members,
          part: { index, count: parts.length },
          unit: {
            key: id,
            group: id,
            members: part.map((m) => m.ref.key),
            group_members: usable.length,
            etag,
            size: size(part),
            last_modified: latest(part),
            modality: 'multi_images',
            ...fixups(part),
          },
        });
      });
      return;
    }
    const media = members.find((m) => m.ref.modality !== 'text');
    const caption = members.find((m) => m.ref.modality === 'text');
    if (!media || !caption) return;
    slots.push({ pointKey: media.ref.key, members, etag, unit: true });
    const mediaInput = media.input;
    const textInput = caption.input;
    if (!mediaInput || textInput?.kind !== 'text') {
      const [bad, other] = !mediaInput ? [media, caption] : [caption, media];
      if (!outcomes.has(other.ref.key)) {
        // a partner that failed (it may work next time) fails the pair, so retry-failed redoes it whole
        const failed = outcomes.get(bad.ref.key)?.status === 'failed';
        outcomes.set(other.ref.key, {
          status: failed ? 'failed' : 'skipped',
          code: failed ? 'partner-failed' : 'partner-skipped',
          reason: `its fused partner ${bad.ref.key} was ${failed ? 'not read' : 'skipped'}: ${outcomes.get(bad.ref.key)?.reason ?? 'not usable'}`,
        });
      }
      return;
    }
    const source = unitSource(u, 0);
    const text = { text: textInput.text, tokens: textInput.tokens };
    inputs.push(
      mediaInput.kind === 'video'
        ? { kind: 'fused', source, text, video: mediaInput.video }
        : { kind: 'fused', source, text, image: (mediaInput as Extract<PreparedInput, { kind: 'image' }>).image },
    );
    targets.set(source, {
      pointKey: media.ref.key,
      members,
      unitMembers: members,
      unit: {
        key: media.ref.key,
        sidecar: caption.ref.key,
        members: [media.ref.key, caption.ref.key],
        member_etags: [media.etag, caption.etag],
        etag,
        size: size(members),
        last_modified: latest(members),
        modality: 'fused',
        media: media.ref.modality,
        ...(media.fixup ? { fixup: media.fixup } : {}),
      },
    });
  });
  return { inputs, targets, slots };
}
