/** Waiting for something with a deadline, without leaving its timer behind. */

/**
 * `work`'s outcome, or — once `ms` have passed without one — what `late` returns (or throws). The timer is
 * cleared either way; `work` itself goes on (nothing here can stop it).
 */
export function within<T>(work: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (err) {
        reject(err);
      }
    }, ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
