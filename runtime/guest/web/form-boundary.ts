/** multipart/form-data boundaries: 24 hex digits from the platform's CSPRNG (set at install). */
let random: () => string = () => '0000000000000000';

export function setBoundarySource(source: () => string): void {
  random = source;
}

export function randomBoundary(): string {
  return `----TributaryFormBoundary${random()}`;
}
