// The parts of fs-ext (native) that Backup365 uses.
declare module 'fs-ext' {
  /** lseek(2); whence 3 = SEEK_DATA, 4 = SEEK_HOLE. Throws ENXIO past the last data. */
  export function seekSync(fd: number, offset: number, whence: number): number;
  export function flockSync(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un'): void;
  export function flock(
    fd: number,
    flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un',
    callback: (error: NodeJS.ErrnoException | null) => void,
  ): void;
  const fsExt: { seekSync: typeof seekSync; flockSync: typeof flockSync; flock: typeof flock };
  export default fsExt;
}
