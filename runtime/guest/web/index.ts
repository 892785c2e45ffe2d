export { installWebApis } from './install.ts';
export { isResponse, readResponse, type ResponseParts } from './response.ts';
