import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, errorFromResponse, parseBody } from './api';

/**
 * Call the lora_nb server extension.
 *
 * @param endPoint path below `<base_url>/lora-nb/`, e.g. `runs?offset=0&limit=50`
 * @param init fetch options (method, body, ...)
 * @returns the parsed JSON reply
 * @throws ApiError carrying the server's `error` message and `hint`
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const requestUrl = URLExt.join(settings.baseUrl, 'lora-nb', endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ApiError(`Cannot reach the Jupyter server: ${String(error)}`, 0, 'Is the Jupyter server still running?');
  }

  const body = parseBody(await response.text());
  if (!response.ok) {
    throw errorFromResponse(response.status, response.statusText, body);
  }
  return body as T;
}
