/**
 * The wire format of the multimodal embedding API, shared by the client and the simulator.
 * See ../shared/reference/dashscope-contract.md.
 */

export const EMBEDDING_PATH = '/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding';
export const DEFAULT_BASE_URL = 'https://dashscope.aliyuncs.com';

/** One element of `input.contents`: a bare string is a text. */
export type ApiContent = string | { text?: string; image?: string; video?: string; multi_images?: string[] };

export interface ApiParameters {
  dimension?: number;
  output_type?: 'dense';
  /** Video frame sampling in [0, 1]. */
  fps?: number;
  instruct?: string;
}

export interface ApiRequestBody {
  model: string;
  input: { contents: ApiContent[] };
  parameters?: ApiParameters;
}

export type EmbeddingType = 'text' | 'image' | 'video' | 'multi_images' | 'vl';

export interface ApiUsage {
  input_tokens?: number;
  image_tokens?: number;
  image_count?: number;
  duration?: number;
  input_tokens_details?: { text_tokens?: number; image_tokens?: number };
  total_tokens?: number;
}

export interface ApiSuccessBody {
  output: { embeddings: { index: number; embedding: number[]; type: EmbeddingType }[] };
  usage?: ApiUsage;
  request_id: string;
}

export interface ApiErrorBody {
  code: string;
  message: string;
  request_id: string;
}
