export { installWebApis } from './install.ts';
export { isResponse, readResponse, responseHeadBytes, type ResponseParts } from './response.ts';
